"""Walk-forward calibration: what a score has been worth, in return and in risk, before a session.

Why: the scan's `expected_return` is the best of three strategies' in-sample averages (biased up), and
the score is a rank, not a return; the builder needs one measure both methods maximise. So the
builder's calibrated objective is `expected_return(score) − portfolio.risk_aversion × risk(score)`, both
fitted here from (score, realised) pairs of past sessions only.

Decisions (docs/learn.md, "Calibrated vs raw objective"):

- **What is realised**: the session's own open→close return of every scored name. It is what the
  directional pack holds (in at the open, out at the close; stops and targets only cut it short), it
  exists for every scored name, picked or not (a fit on the picks alone would learn from the
  builder's own choices), and it is known at that session's close, so a pair dated D may inform D + 1.
- **The fit**: scores in `bins` equal bins of 0–100; per bin the mean return and its standard deviation
  (the trade's daily volatility). Each bin's mean is shrunk toward zero by its number of observations,
  `n / (n + shrinkage_obs)`; each bin's volatility toward the pooled one by the same factor. With
  `method: isotonic` the shrunk means are made non-decreasing in score (weighted pool-adjacent-violators),
  so a better score is never worth less. Between bin centres the values are interpolated linearly.
- **The schedule**: a fit is made on refit days only — every `refit_sessions`-th weekday counted
  from a fixed date (`ANCHOR`), so a backtest and a live build refit on the same days — from the pairs
  of the `window_sessions` sessions strictly before the refit day; the sessions up to the next refit
  use it. With fewer than `min_observations` pairs the calibration is not ready and the builder uses
  the raw objective (and says so in the targets' notes): a zero calibration would make every name
  equal and leave the pick to the solver's tie-breaking.
- **Live and backtest share the code**: the pairs are each session's panel scan ranked as `wolfkit scan`
  ranks, with its open→close returns (`pairs_of`), and the fit is `fit`: a live build makes them over
  the bars before its session (`score_pairs`, `for_session`), a backtest over its panel, each row
  scanned once for trading and calibrating alike (`backtest.panel`, then `schedule` and `walk_forward`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from wolfkit.panel_scan import PanelScan
from wolfkit.scan import rank, resolve_signals

if TYPE_CHECKING:
    from wolfkit.config import CalibrationParams, Params
    from wolfkit.data.base import DataProvider
    from wolfkit.signals import Panel

ANCHOR = np.datetime64("2000-01-03")
"""Refit days are counted in weekdays from this Monday, the same for every run."""

PAIR_COLUMNS = ["date", "symbol", "score", "realised"]


@dataclass(frozen=True)
class Calibration:
    """Score → expected return and → risk (daily volatility), fitted on `n` pairs of `sessions`
    sessions from `fit_start` to `fit_end` (all strictly before `refit_day`). `ready` is False below
    `min_observations`: the builder then uses the raw objective."""

    knots: tuple[float, ...]
    returns: tuple[float, ...]
    risks: tuple[float, ...]
    counts: tuple[int, ...]
    n: int
    sessions: int
    fit_start: date | None
    fit_end: date | None
    refit_day: date | None
    ready: bool

    def expected_return(self, score: np.ndarray | float) -> np.ndarray:
        """The calibrated next-session return at each score (0 when not ready)."""
        s = np.asarray(score, dtype=float)
        if not self.ready:
            return np.zeros(s.shape)
        return np.interp(s, self.knots, self.returns)

    def risk(self, score: np.ndarray | float) -> np.ndarray:
        """The calibrated daily volatility of the trade at each score (0 when not ready)."""
        s = np.asarray(score, dtype=float)
        if not self.ready:
            return np.zeros(s.shape)
        return np.interp(s, self.knots, self.risks)

    def describe(self) -> str:
        """One line for notes and reports: the window, the count, whether it is used."""
        if not self.ready:
            return f"calibration not ready ({self.n} observations before {self.refit_day}): raw objective used"
        return (f"calibrated on {self.n} (score, open→close) pairs of {self.sessions} sessions "
                f"{self.fit_start} … {self.fit_end}")


def isotonic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted least-squares non-decreasing fit (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight, length]
    for v, w in zip(values.tolist(), weights.tolist()):
        blocks.append([v, max(w, 1e-12), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([np.full(int(n), m) for m, _, n in blocks]) if blocks else np.zeros(0)


def fit(pairs: pd.DataFrame, cp: CalibrationParams, refit_day: date | None = None) -> Calibration:
    """Fit score → return and → risk on `pairs` (PAIR_COLUMNS; the caller gives only what was known)."""
    ok = pairs["score"].notna() & np.isfinite(pairs["realised"].to_numpy(float))
    p = pairs.loc[ok]
    score, real = p["score"].to_numpy(float), p["realised"].to_numpy(float)
    dates = pd.to_datetime(p["date"]) if len(p) else pd.Series([], dtype="datetime64[ns]")
    n = len(p)
    edges = np.linspace(0.0, 100.0, cp.bins + 1)
    knots = (edges[:-1] + edges[1:]) / 2
    code = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, cp.bins - 1)
    counts = np.bincount(code, minlength=cp.bins)
    sums = np.bincount(code, weights=real, minlength=cp.bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
        sq = np.bincount(code, weights=(real - means[code]) ** 2, minlength=cp.bins) if n else np.zeros(cp.bins)
        sd = np.where(counts > 1, np.sqrt(sq / np.maximum(counts - 1, 1)), 0.0)
    pooled = float(np.std(real, ddof=1)) if n > 1 else 0.0
    keep = counts / (counts + cp.shrinkage_obs)
    ret = means * keep
    if cp.method == "isotonic":
        ret = isotonic(ret, counts.astype(float))
    risk = sd * keep + pooled * (1 - keep)
    return Calibration(
        knots=tuple(knots.tolist()), returns=tuple(ret.tolist()), risks=tuple(risk.tolist()),
        counts=tuple(int(x) for x in counts), n=n, sessions=int(dates.nunique()),
        fit_start=dates.min().date() if n else None, fit_end=dates.max().date() if n else None,
        refit_day=refit_day, ready=n >= cp.min_observations,
    )


# ---------------------------------------------------------------- the schedule (pure)


def refit_row(dates: pd.DatetimeIndex, i: int, every: int) -> int:
    """The position in `dates` (sessions, ascending) of the refit day that session `i` uses: the latest
    session at or before it whose weekday count from `ANCHOR` enters a new block of `every`."""
    block = np.busday_count(ANCHOR, dates.to_numpy().astype("datetime64[D]")) // every
    return int(np.flatnonzero(block == block[i])[0])


def history_rows(dates: pd.DatetimeIndex, refit: int, window: int, first_row: int) -> np.ndarray:
    """The rows of the `window` sessions strictly before row `refit`, none before `first_row`."""
    return np.arange(max(first_row, refit - window), refit)


# ---------------------------------------------------------------- pairs from a panel (pure)


def score_pairs(panel: Panel, universe: pd.DataFrame, params: Params, rows: Sequence[int],
                quarantine: np.ndarray | None = None, scanner: PanelScan | None = None) -> pd.DataFrame:
    """(date, symbol, score, realised) for each session row: the score its own scan gave (the panel
    scan, ranked by `scan.rank`) and the row's open→close return (NaN on a quarantined bar).
    `scanner`: a `PanelScan` of this panel already made (a backtest's), else one is made."""
    rows = [int(r) for r in rows]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in PAIR_COLUMNS})
    signals, weights = resolve_signals(params.scan)
    if scanner is None:
        scanner = PanelScan(panel, universe, signals, params)
    col = pd.Series(np.arange(len(panel.symbols)), index=panel.symbols)
    parts = []
    for r, sc in zip(rows, scanner.sessions(rows)):
        table = rank(sc.per_symbol, sc.excluded, universe, weights, params)[0]
        parts.append(pairs_of(panel, r, table[["symbol", "score"]], col, quarantine))
    return pd.concat(parts, ignore_index=True)


def pairs_of(panel: Panel, row: int, scored: pd.DataFrame, col: pd.Series,
             quarantine: np.ndarray | None = None) -> pd.DataFrame:
    """One session's pairs: `scored` (symbol, score) with the row's open→close return."""
    j = col.reindex(scored["symbol"]).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        oc = panel.close[row, j] / panel.open[row, j] - 1
    if quarantine is not None:
        oc = np.where(quarantine[row, j], np.nan, oc)
    return pd.DataFrame({"date": panel.dates[row], "symbol": scored["symbol"].to_numpy(),
                         "score": scored["score"].to_numpy(float), "realised": oc})


@dataclass(frozen=True)
class Schedule:
    """Which fit each session row uses (`refit_of`: row -> its refit day's row) and the history rows each
    refit day is fitted on (`history`: refit row -> the `window_sessions` rows before it)."""

    refit_of: dict[int, int]
    history: dict[int, list[int]]

    def rows_needed(self) -> list[int]:
        """Every row whose pairs some fit reads, in order."""
        return sorted({h for rows in self.history.values() for h in rows})


def schedule(dates: pd.DatetimeIndex, sessions: Sequence[int], params: Params) -> Schedule:
    """The refit days of `sessions` (rows of `dates`) and the rows each is fitted on (rows with at least
    `scan.min_history` rows before them)."""
    cp = params.portfolio.calibration
    refit_of = {int(r): refit_row(dates, int(r), cp.refit_sessions) for r in sessions}
    return Schedule(refit_of, {d: history_rows(dates, d, cp.window_sessions, params.scan.min_history).tolist()
                               for d in sorted(set(refit_of.values()))})


def walk_forward(dates: pd.DatetimeIndex, plan: Schedule, pairs: pd.DataFrame, params: Params) -> dict[int, Calibration]:
    """The calibration each session row of `plan` uses: fitted on its refit day from the pairs (as
    `score_pairs` makes them) of the history rows before that day."""
    cp = params.portfolio.calibration
    by_date = {pd.Timestamp(d): g for d, g in pairs.groupby("date", sort=False)}
    fits = {}
    for d, rows in plan.history.items():
        parts = [by_date[dates[h]] for h in rows if dates[h] in by_date]
        fits[d] = fit(pd.concat(parts, ignore_index=True) if parts else pairs.iloc[:0], cp, dates[d].date())
    return {r: fits[d] for r, d in plan.refit_of.items()}


# ---------------------------------------------------------------- a live build (reads the provider)


def for_build(params: Params, session: date, provider: DataProvider | None = None) -> Calibration | None:
    """What a live build passes to the builder: the session's calibration under `portfolio.objective:
    calibrated`, else None (nothing is read)."""
    if params.portfolio.objective != "calibrated":
        return None
    return for_session(params, session, provider)


def for_session(params: Params, session: date, provider: DataProvider | None = None) -> Calibration:
    """The calibration a build for `session` uses: the same pairs and fit as a backtest's, over the
    bars before the session (read from the parameters' provider when none is given)."""
    from wolfkit.data.quality import find_jumps
    from wolfkit.signals import Panel

    if provider is None:
        from wolfkit.data import get_provider

        provider = get_provider(params)
    cp, scan = params.portfolio.calibration, params.scan
    uni = provider.universe().copy()
    uni["symbol"] = uni["symbol"].astype(str)
    if params.data.symbols:
        uni = uni[uni["symbol"].isin(params.data.symbols)]
    uni = uni.drop_duplicates("symbol").set_index("symbol")
    days = scan.lookback_days + cp.window_sessions + cp.refit_sessions
    bars = provider.daily_bars(list(uni.index), session - timedelta(days=int(days * 1.5) + 30),
                               session - timedelta(days=1))
    bars = bars[bars["symbol"].astype(str).isin(uni.index)].reset_index(drop=True)
    if bars.empty:
        return fit(pd.DataFrame(columns=PAIR_COLUMNS), cp, session)
    bars["symbol"] = bars["symbol"].astype(str)
    panel = Panel.from_bars(bars, has_ohlc=provider.has_ohlc)
    dates = panel.dates.append(pd.DatetimeIndex([pd.Timestamp(session)]))
    day = refit_row(dates, len(dates) - 1, cp.refit_sessions)
    rows = history_rows(dates, day, cp.window_sessions, scan.min_history)
    jumps = find_jumps(bars, uni["sector"], params.data.jump_threshold)
    q = np.zeros(panel.shape, dtype=bool)
    if len(jumps):
        i = panel.dates.get_indexer(pd.to_datetime(jumps["date"]))
        j = panel.symbols.get_indexer(jumps["symbol"].astype(str))
        q[i[(i >= 0) & (j >= 0)], j[(i >= 0) & (j >= 0)]] = True
    return fit(score_pairs(panel, uni, params, rows.tolist(), q), cp, dates[day].date())
