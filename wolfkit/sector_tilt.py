"""The sector tilt (`portfolio.sector_tilt`): a lower cap for a sector whose trades have lost money with
confidence over a trailing window — "log which sectors work, adapt the rules".

Why it is built this way:

- **Judged on what was realised, with an interval.** A sector's record is the mean return per closed
  directional trade over the last `window` sessions before the session, with the 95% interval
  clustered by session (`attribution.by_dimension`: names of one day share its market move). Only a
  sector whose whole interval lies below zero, traded on at least `min_sessions` sessions, is tilted;
  a bad month on four trades is not evidence.
- **The directional pack only.** The sector cap is a rule of the directional pack, so the trades that
  judge it are the pack's (maxdiff trades are a different bet on the same names).
- **Softer, not banned.** A tilted sector keeps `scale` × its cap (`portfolio.cap_for`): the builder
  can still hold it, less of it, and the tilt lifts by itself once the window no longer shows a
  confident loss.
- **Walk-forward.** Only trades closed before the session count (the caller passes the fills before
  it). Pure: a fills table in, a typed `SectorTilt` out; the backtest applies it through the
  parameters (`SectorTilt.apply`: `portfolio.sector_caps`), so the builder's own cap lookup enforces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from wolfkit import attribution
from wolfkit import performance as perf
from wolfkit.domain import Layer, Side

if TYPE_CHECKING:
    from wolfkit.config import Params


@dataclass(frozen=True)
class TiltedSector:
    """One sector whose cap is lowered, and the record that lowered it."""

    sector: str
    cap: float  # the lowered cap
    base_cap: float  # `portfolio.cap_for(sector)` without the tilt
    mean_return: float
    ci_high: float
    trades: int
    sessions: int

    def record(self) -> dict[str, Any]:
        return {"sector": self.sector, "cap": self.cap, "base_cap": self.base_cap, "mean_return": self.mean_return,
                "ci_high": self.ci_high, "trades": self.trades, "sessions": self.sessions}


@dataclass(frozen=True)
class SectorTilt:
    """The tilt for one session: the sectors whose cap is lowered (empty: none), judged on the trades
    opened from `since` and closed before `session`."""

    session: date
    since: date | None
    sectors: tuple[TiltedSector, ...] = ()

    def caps(self) -> dict[str, float]:
        return {t.sector: t.cap for t in self.sectors}

    def apply(self, params: Params) -> Params:
        """`params` with the tilted caps as per-sector overrides (the builder's `cap_for` reads them)."""
        if not self.sectors:
            return params
        return params.with_changes({"portfolio": {"sector_caps": {**params.portfolio.sector_caps, **self.caps()}}})

    def note(self) -> str:
        """One line for the targets' notes and the report: which sectors, their caps and why."""
        if not self.sectors:
            return ""
        parts = [f"{t.sector} cap {t.base_cap:.0%} → {t.cap:.0%} (mean {t.mean_return:+.2%} per trade, 95% interval "
                 f"below {t.ci_high:+.2%}, {t.trades} trades on {t.sessions} sessions)" for t in self.sectors]
        return f"sector tilt since {self.since}: " + "; ".join(parts)


def directional_trades(fills: pd.DataFrame, sectors: Mapping[str, str] | pd.Series) -> pd.DataFrame:
    """Closed directional round trips of `fills` (fills.csv columns) with each symbol's sector and the
    return per trade (P&L ÷ entry value). A symbol's sells before its first buy in `fills` belong to a
    trip opened earlier and are left out (the caller may cut fills at any session)."""
    f = fills[fills["layer"].astype(str) == str(Layer.DIRECTIONAL)]
    bought = (f["side"].astype(str) == str(Side.BUY)).groupby(f["symbol"]).cummax()
    trips = perf.round_trips(f[bought.to_numpy(bool)])
    out = trips.rename(columns={"opened": "date"})
    out["sector"] = out["symbol"].map(dict(sectors)).fillna(attribution.UNKNOWN).astype(str)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["ret"] = np.where(out["entry_value"] > 0, out["pnl"] / out["entry_value"], np.nan)
    return out


def sector_tilt(trades: pd.DataFrame, session: date, sessions_before: Sequence[date], params: Params) -> SectorTilt:
    """The tilt for `session` from `trades` (`directional_trades` of fills before it): sectors traded on
    at least `min_sessions` of the last `window` sessions in `sessions_before` whose mean return per trade
    has its 95% interval (clustered by session) entirely below zero get `scale` × their cap."""
    st = params.portfolio.sector_tilt
    past = sorted(d for d in sessions_before if d < session)[-st.window:]
    if not past:
        return SectorTilt(session, None)
    since = past[0]
    dates = pd.to_datetime(trades["date"])
    recent = trades[(dates >= pd.Timestamp(since)) & (dates < pd.Timestamp(session))]
    if "closed" in recent.columns:
        recent = recent[pd.to_datetime(recent["closed"]) < pd.Timestamp(session)]
    if recent.empty:
        return SectorTilt(session, since)
    table = attribution.by_dimension(recent.assign(date=pd.to_datetime(recent["date"])), "sector")
    tilted = []
    for r in table.itertuples(index=False):
        if r.group == attribution.UNKNOWN or r.sessions < st.min_sessions or not (r.ci_high < 0):
            continue
        base = params.portfolio.cap_for(r.group)
        tilted.append(TiltedSector(r.group, round(base * st.scale, 6), base, float(r.mean_return), float(r.ci_high),
                                   int(r.trades), int(r.sessions)))
    return SectorTilt(session, since, tuple(sorted(tilted, key=lambda t: t.sector)))


def tilt_summary(tilts: Sequence[SectorTilt], sessions: int) -> tuple[dict[str, Any], str]:
    """What a backtest with the tilt on reports: every tilted session (summary.json) and one line naming
    the tilted sectors, their caps and on how many of the `sessions` they were lowered."""
    by_sector: dict[str, dict[str, Any]] = {}
    for t in tilts:
        for s in t.sectors:
            row = by_sector.setdefault(s.sector, {"sessions": 0, "first": t.session.isoformat(),
                                                  "base_cap": s.base_cap, "cap": s.cap})
            row["sessions"] += 1
            row["last"] = t.session.isoformat()
    record = {"sessions_tilted": len(tilts), "by_sector": by_sector,
              "sessions": [{"date": t.session.isoformat(), "since": t.since.isoformat() if t.since else None,
                            "sectors": [s.record() for s in t.sectors]} for t in tilts]}
    if not by_sector:
        return record, "sector tilt on: no sector had a confidently negative record; no cap was lowered"
    parts = [f"{k} {v['base_cap']:.0%} → {v['cap']:.0%} on {v['sessions']} session(s) ({v['first']} … {v['last']})"
             for k, v in sorted(by_sector.items())]
    return record, f"sector tilt lowered caps on {len(tilts)} of {sessions} sessions: " + "; ".join(parts)
