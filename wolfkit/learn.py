"""`wolfkit learn`: attribution of realised returns, read from a backtest folder or from the live ledger.

A backtest folder (the contract in docs/backtest.md) gives its fills and, per session and name, what the
morning knew (sector, tier, strategy, score components); the ledger gives the real fills of every run
and the planned orders they belong to (sector, strategy, score; the tier from the score and the
parameters' tiers). Both become the same trades table, so `wolfkit.attribution` judges live results the
way it judges history. Writes `attribution.csv`, `signals.csv`, `trades.csv` and `learn.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wolfkit import attribution
from wolfkit.errors import BadInputError

if TYPE_CHECKING:
    from wolfkit.config import Params

LEARN_FILES = ("attribution.csv", "signals.csv", "trades.csv", "learn.json")


@dataclass(frozen=True)
class Learned:
    """What one source taught: its trades, the attribution tables, and where they came from."""

    source: str
    trades: pd.DataFrame
    attribution: pd.DataFrame
    signals: pd.DataFrame
    window: int | None = None  # the trailing sessions judged (None: all)

    def summary(self) -> dict[str, Any]:
        t = self.trades
        return {"source": self.source, "window": self.window, "trades": len(t),
                "sessions": int(t["date"].nunique()) if len(t) else 0,
                "first": str(t["date"].min().date()) if len(t) else None,
                "last": str(t["date"].max().date()) if len(t) else None,
                "pnl": float(t["pnl"].sum()), "dimensions": list(attribution.DIMENSIONS),
                "interval": "95%, clustered by session"}


def _learned(source: str, trades: pd.DataFrame, scores: pd.DataFrame | None, sessions: pd.Series,
             window: int | None) -> Learned:
    """The tables over the trades opened in the last `window` of `sessions` (None: all of them)."""
    trades = attribution.trailing(trades, sessions, window)
    if scores is not None and window is not None and len(trades):
        scores = scores[scores["date"] >= trades["date"].min()]
    return Learned(source, trades, attribution.attribution(trades), attribution.signals(trades, scores), window)


def from_backtest(folder: str | Path, window: int | None = None) -> Learned:
    """Attribution of a backtest folder's trades (fills.csv joined with scores.parquet); `window`: only
    the trades opened in its last `window` sessions."""
    path = Path(folder)
    for name in ("fills.csv", "scores.parquet"):
        if not (path / name).is_file():
            raise BadInputError(f"{path / name}: not found; point --backtest at a folder written by `wolfkit backtest`")
    fills = pd.read_csv(path / "fills.csv", parse_dates=["date"])
    scores = pd.read_parquet(path / "scores.parquet")
    scores["date"] = pd.to_datetime(scores["date"])
    return _learned(str(path), attribution.trades(fills, scores), scores, scores["date"], window)


def ledger_fills(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ledger's real fills (date, symbol, side, qty, price, layer, reason) and its planned orders
    (date, symbol, layer, sector, strategy, score): every run's, each fill with the layer of the planned
    order it belongs to (a fill without one takes the run's only order on its symbol, else "unknown");
    the session is the run's."""
    from wolfkit.ledger import Ledger

    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: ledger not found; pass --ledger with the file execute wrote "
                            "(execution.ledger_path, default outputs/ledger.sqlite)")
    fills, known = [], []
    ledger = Ledger(p)
    try:
        for run_id in ledger.run_ids():
            run = ledger.run(run_id) or {}
            if not run.get("as_of"):
                continue
            day = pd.Timestamp(run["as_of"])
            orders = {o.plan_client_id: o for o in ledger.orders_for_run(run_id)}
            by_symbol: dict[str, list] = {}
            for planned in orders.values():
                by_symbol.setdefault(planned.symbol, []).append(planned)
                known.append({"date": day, "symbol": planned.symbol, "layer": str(planned.layer),
                              "sector": planned.sector, "strategy": str(planned.strategy), "score": planned.score})
            for f in ledger.fills_for_run(run_id):
                mine = by_symbol.get(f["symbol"], [])
                o = orders.get(f.get("plan_client_id") or "") or (mine[0] if len(mine) == 1 else None)
                fills.append({"date": day, "symbol": f["symbol"], "side": f["side"], "qty": float(f["qty"]),
                              "price": float(f["price"]), "layer": str(o.layer) if o else attribution.UNKNOWN,
                              "reason": ""})
    finally:
        ledger.close()
    return (pd.DataFrame(fills, columns=["date", "symbol", "side", "qty", "price", "layer", "reason"]),
            pd.DataFrame(known, columns=["date", "symbol", "layer", "sector", "strategy", "score"]))


def from_ledger(path: str | Path, params: Params, window: int | None = None) -> Learned:
    """Attribution of the ledger's real fills (`ledger_fills`); the tier comes from the score."""
    from wolfkit.backtest.engine import tier_of

    fl, kn = ledger_fills(path)
    kn = kn.sort_values("layer").drop_duplicates(["date", "symbol"])  # directional first: a symbol's pack row
    kn["tier"] = tier_of(kn["score"].to_numpy(float), params) if len(kn) else []
    return _learned(str(path), attribution.trades(fl, kn.drop(columns=["layer"])), None, kn["date"], window)


def tilt_for_build(params: Params, session: date) -> tuple[Params, str]:
    """A live build under `portfolio.sector_tilt` (the backtest's rule, on real fills): the ledger's
    closed directional trades before `session` judge each sector over the last `window` sessions; returns
    the parameters with the tilted caps and the note saying so ("" when nothing is tilted). Off, or no
    ledger yet: the parameters unchanged."""
    from wolfkit import calendar
    from wolfkit.config import project_path
    from wolfkit.sector_tilt import directional_trades, sector_tilt

    st = params.portfolio.sector_tilt
    path = project_path(params.execution.ledger_path)
    if not st.enabled or not path.is_file():
        return params, ""
    fills, known = ledger_fills(path)
    sectors = known.drop_duplicates("symbol", keep="last").set_index("symbol")["sector"]
    before = calendar.sessions_ending(calendar.previous_session(session), st.window)
    tilt = sector_tilt(directional_trades(fills[pd.to_datetime(fills["date"]) < pd.Timestamp(session)], sectors),
                       session, before, params)
    return tilt.apply(params), tilt.note()


def write(learned: Learned, out: str | Path) -> list[Path]:
    """Write the four files into `out` (a new or empty folder: results are never overwritten)."""
    from wolfkit.backtest.folder import claim

    folder = claim(Path(out).expanduser().resolve())
    trades = learned.trades.assign(date=learned.trades["date"].dt.date)
    learned.attribution.to_csv(folder / "attribution.csv", index=False)
    learned.signals.to_csv(folder / "signals.csv", index=False)
    trades.to_csv(folder / "trades.csv", index=False)
    (folder / "learn.json").write_text(json.dumps(learned.summary(), indent=2))
    return [folder / n for n in LEARN_FILES]


def console_tables(learned: Learned) -> list:
    """Rich tables for the terminal: one per dimension, then the signals."""
    from rich.table import Table

    def pct(v: Any) -> str:
        return f"{v:+.2%}" if isinstance(v, (int, float)) and np.isfinite(v) else "n/a"

    out = []
    for dim, g in learned.attribution.groupby("dimension", sort=False):
        lately = f", trades opened in the last {learned.window} sessions" if learned.window else ""
        t = Table(title=f"realised return by {dim} (mean per trade, 95% interval clustered by session{lately})")
        for c in (dim, "trades", "sessions", "mean", "interval", "P&L", "hit rate"):
            t.add_column(c, justify="left" if c == dim else "right")
        for _, r in g.iterrows():
            t.add_row(r["group"], f"{r['trades']:,}", f"{r['sessions']:,}", pct(r["mean_return"]),
                      f"{pct(r['ci_low'])} … {pct(r['ci_high'])}", f"${r['pnl']:,.0f}", f"{r['hit_rate']:.0%}")
        out.append(t)
    s = Table(title="signals: IC over every scored name; trades in the upper vs lower half of the component")
    for c in ("signal", "IC mean", "IC t", "upper half", "lower half", "difference"):
        s.add_column(c, justify="left" if c == "signal" else "right")
    for _, r in learned.signals.iterrows():
        ic = f"{r['ic_mean']:+.4f}" if pd.notna(r["ic_mean"]) else "n/a"
        tt = f"{r['ic_t']:+.2f}" if pd.notna(r["ic_t"]) else "n/a"
        s.add_row(str(r["signal"]), ic, tt, pct(r["upper_mean"]), pct(r["lower_mean"]), pct(r["upper_minus_lower"]))
    out.append(s)
    return out


def show(folder: str | Path) -> Learned:
    """The backtest notebook's "what earned it" section: the attribution tables and the signals."""
    from wolfkit import report

    learned = from_backtest(folder)
    s = learned.summary()
    report.markdown(f"{s['trades']:,} closed trades over {s['sessions']:,} sessions. Mean return per trade "
                    "(P&L over what the trade put at risk) with a 95% interval clustered by session; a group "
                    "whose interval spans zero has not shown an edge.")
    for dim, g in learned.attribution.groupby("dimension", sort=False):
        report.table(g.drop(columns=["dimension"]).rename(columns={"group": dim}).round(4),
                     caption=f"Realised return by {dim}")
    report.table(learned.signals.round(4), caption="Signals: IC over every scored name; trades in the upper vs "
                                                   "lower half of each component")
    report.record("learn_trades", s["trades"])
    report.record("learn_dimensions", list(learned.attribution["dimension"].unique()))
    return learned
