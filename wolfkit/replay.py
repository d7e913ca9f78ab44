"""Replay a whole session through the simulated broker, to show what the maxdiff layer adds.

Leverage freed by directional exits can sit idle for hours. A replay makes that
measurable: the same day (minute bars from the demo market or a file), the same pack, run twice
through the SAME engine as live — directional only, and both layers — reporting gross leverage over
time by layer, idle leverage-hours, fills and fill rate, and P/L by layer side by side.

Per minute the work is vectorised over symbols: the bars are a (minutes x symbols) array; the
simulated broker examines only symbols with open orders, and the engine only symbols it trades.

Public API (notebooks/replay.ipynb):

- `SessionBars.from_frame(minute_bars)` — minute bars (data/base.py layout) as arrays.
- `run_session(params, plan, bars, equity, maxdiff=…)` -> `SessionRun` — one pass, one engine.
- `replay_session(params, session, equity, …)` -> `ReplayResult` — scan, build, run both ways.
- `ReplayResult.comparison()`, `.leverage` (DataFrame: minute x [variant, layer]), `.fills`, `.text()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable

import numpy as np
import pandas as pd

from wolfkit.broker.sim import SimBroker
from wolfkit.config import Params
from wolfkit.data.base import DataProvider
from wolfkit.domain import Layer, PlanStatus, Side
from wolfkit.errors import BadInputError
from wolfkit.intraday import IntradayEngine, Market
from wolfkit.ledger import Ledger
from wolfkit.orders import OrderPlan


@dataclass(frozen=True)
class SessionBars:
    """One session of minute bars as aligned arrays: `times` (ET, bar start) x `symbols`.

    Missing bars are NaN (the simulated broker and the engine skip NaN prices).
    """

    symbols: list[str]
    times: pd.DatetimeIndex
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    @classmethod
    def from_frame(cls, bars: pd.DataFrame, source: str = "minute bars") -> SessionBars:
        """From the long layout of `wolfkit.data.base` (symbol, timestamp, open, high, low, close, volume)."""
        missing = [c for c in ("symbol", "timestamp", "open", "high", "low", "close") if c not in bars.columns]
        if missing:
            raise BadInputError(f"{source}: missing column(s) {missing}; minute bars need symbol, timestamp, "
                                "open, high, low, close")
        if bars.empty:
            raise BadInputError(f"{source}: no minute bars for this session; pick a trading day with data")
        ts = pd.to_datetime(bars["timestamp"])
        if ts.dt.tz is None:
            raise BadInputError(f"{source}: timestamp must be timezone-aware (America/New_York bar starts)")
        frame = bars.assign(timestamp=ts.dt.tz_convert("America/New_York"))
        wide = frame.pivot_table(index="timestamp", columns="symbol", values=["open", "high", "low", "close"],
                                 aggfunc="last", dropna=False)
        symbols = sorted(frame["symbol"].unique().tolist())
        arr = {k: wide[k].reindex(columns=symbols).to_numpy(dtype=float) for k in ("open", "high", "low", "close")}
        return cls(symbols, pd.DatetimeIndex(wide.index), arr["open"], arr["high"], arr["low"], arr["close"])


@dataclass
class SessionRun:
    """One engine's pass over a session: per-minute exposure by layer, fills, final engine."""

    engine: IntradayEngine
    broker: SimBroker
    leverage: pd.DataFrame  # index: minute; columns directional, maxdiff, total (committed at cost / equity)
    market_leverage: pd.DataFrame  # the same, marked to the minute's close

    @property
    def fills(self) -> pd.DataFrame:
        """Every fill the engine booked: at, layer, purpose, symbol, side, qty, price, client_order_id."""
        rows = [f.__dict__ for f in self.engine.fills]
        cols = ["at", "layer", "purpose", "symbol", "side", "qty", "price", "client_order_id"]
        return pd.DataFrame(rows, columns=cols)


def _engine_index(engine: IntradayEngine, bars: SessionBars) -> np.ndarray:
    pos = {s: i for i, s in enumerate(bars.symbols)}
    missing = [s for s in engine.symbols if s not in pos]
    if missing:
        raise BadInputError(f"minute bars have no data for planned symbol(s) {missing[:10]}; "
                            "use bars that cover every symbol of the orders plan")
    return np.array([pos[s] for s in engine.symbols], dtype=np.int64)


def _marked(engine: IntradayEngine, close: np.ndarray) -> tuple[float, float]:
    """Gross position value by layer at `close` (aligned to engine.symbols; open positions only)."""
    def px(symbol: str, fallback: float) -> float:
        v = close[engine.symbol_index[symbol]]
        return fallback if np.isnan(v) else float(v)

    d = sum(abs(x.qty) * px(x.symbol, x.entry.avg_price) for x in engine.state.directional if x.qty)
    m = sum(abs(s.qty) * px(s.symbol, s.entry.avg_price) for s in engine.state.slots if s.qty)
    return d, m


def drive(
    engine: IntradayEngine,
    broker: SimBroker,
    bars: SessionBars,
    *,
    start: int = 0,
    stop: int | None = None,
    check: Callable[[IntradayEngine, datetime], None] | None = None,
    end_of_day: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Feed minutes [start, stop) to broker then engine; returns (committed, marked) arrays, shape (n, 3).

    `check(engine, now)` runs after every event (tests assert invariants there). The broker's
    `end_of_day` (expiring DAY orders) runs after the last minute of the session.
    """
    stop = len(bars.times) if stop is None else stop
    idx = _engine_index(engine, bars)
    committed = np.zeros((stop - start, 3))
    marked = np.zeros((stop - start, 3))
    eq = engine.state.equity
    for k, t in enumerate(range(start, stop)):
        now = bars.times[t].to_pydatetime()
        hi, lo, cl = bars.high[t], bars.low[t], bars.close[t]
        ok = ~np.isnan(cl)
        if ok.all():
            broker.on_bar(bars.symbols, hi, lo, cl, now)
        else:
            live = np.flatnonzero(ok)
            broker.on_bar([bars.symbols[i] for i in live], hi[live], lo[live], cl[live], now)
        engine.step(now, Market(hi[idx], lo[idx], cl[idx]))
        if check is not None:
            check(engine, now)
        e = engine.exposure()
        committed[k] = (e.directional / eq, e.maxdiff / eq, e.total / eq)
        d, m = _marked(engine, cl[idx])
        marked[k] = (d / eq, m / eq, (d + m) / eq)
    if end_of_day and stop == len(bars.times):
        broker.end_of_day()
        now = bars.times[stop - 1].to_pydatetime()
        engine.step(now, None)
        if check is not None:
            check(engine, now)
    return committed, marked


def new_broker(equity: float, params: Params) -> SimBroker:
    """The simulated account for a replay: the parameters' account (`Params.account`), as the plan's."""
    return SimBroker(equity, params.account(equity).multiplier, market_buffer=params.execution.market_buffer)


def run_session(
    params: Params,
    plan: OrderPlan,
    bars: SessionBars,
    equity: float,
    *,
    maxdiff: bool = True,
    ledger: Ledger | None = None,
    check: Callable[[IntradayEngine, datetime], None] | None = None,
) -> SessionRun:
    """Replay one session of `plan` with (or without) the maxdiff layer through a fresh SimBroker."""
    broker = new_broker(equity, params)
    engine = IntradayEngine.start(params, plan, broker, equity=equity, session=bars.times[0].date(),
                                  maxdiff=maxdiff, ledger=ledger)
    committed, marked = drive(engine, broker, bars, check=check)
    cols = ["directional", "maxdiff", "total"]
    return SessionRun(engine, broker, pd.DataFrame(committed, index=bars.times, columns=cols),
                      pd.DataFrame(marked, index=bars.times, columns=cols))


VARIANTS = ("directional", "both")


@dataclass
class ReplayResult:
    """The same session replayed directional-only and with both layers, side by side."""

    session: date
    equity: float
    plan: OrderPlan
    runs: dict[str, SessionRun]  # "directional", "both"
    total_max: float
    synthetic: bool
    elapsed_s: dict[str, float]

    @property
    def leverage(self) -> pd.DataFrame:
        """Committed gross leverage (x equity) per minute; columns (variant, layer), layer in
        directional | maxdiff | total."""
        return pd.concat({v: r.leverage for v, r in self.runs.items()}, axis=1)

    @property
    def fills(self) -> pd.DataFrame:
        """Every fill of both variants, with a `variant` column."""
        return pd.concat([r.fills.assign(variant=v) for v, r in self.runs.items()], ignore_index=True)

    def comparison(self) -> pd.DataFrame:
        """One row per metric, one column per variant (see `metrics`)."""
        return pd.DataFrame({v: metrics(r, self.total_max) for v, r in self.runs.items()})

    def text(self) -> str:
        """A plain-text report (CLI, tests, notebooks)."""
        cmp = self.comparison()
        head = (f"replay {self.session} — {len(self.plan.orders)} planned orders, "
                f"{len(self.plan.maxdiff_plans)} maxdiff plans, equity ${self.equity:,.0f}")
        if self.synthetic:
            head += "\nSYNTHETIC PRICES (demo market): the numbers show mechanics, not real performance"
        lines = [head, "", f"{'':32}" + "".join(f"{v:>16}" for v in cmp.columns)]
        for metric, row in cmp.iterrows():
            fmt = _FORMATS.get(str(metric), "{:.2f}")
            lines.append(f"{metric:32}" + "".join(f"{'—' if x != x else fmt.format(x):>16}" for x in row))
        lines.append("")
        lines.append("timing: " + ", ".join(f"{v} {s:.2f}s" for v, s in self.elapsed_s.items()))
        return "\n".join(lines)


_FORMATS = {
    "maxdiff fills": "{:.0f}", "directional fills": "{:.0f}", "maxdiff plans filled": "{:.0f}",
    "maxdiff plans listened": "{:.0f}", "maxdiff fill rate": "{:.0%}",
    "P/L directional ($)": "{:,.2f}", "P/L maxdiff ($)": "{:,.2f}", "P/L total ($)": "{:,.2f}",
}


def metrics(run: SessionRun, total_max: float) -> dict[str, float]:
    """Leverage use, fills, fill rate and P/L of one pass.

    - mean leverage: the time average of committed gross leverage (x equity) over the session;
    - idle leverage-hours: Σ over minutes of (total_max − committed leverage) / 60 — room in the
      total bucket left unused, in leverage x hours;
    - maxdiff fill rate: plans whose entry filled / plans that listened (filled + expired);
    - P/L: realised by layer plus unrealised on positions kept past the close (at the last close).
    """
    lev = run.leverage
    eng = run.engine
    plans = eng.state.plans
    filled = sum(1 for p in plans if p.status == PlanStatus.FILLED)
    expired = sum(1 for p in plans if p.status == PlanStatus.EXPIRED)
    unreal = _unrealized(run)
    pl_d = eng.state.realized.get(Layer.DIRECTIONAL, 0.0) + unreal[0]
    pl_m = eng.state.realized.get(Layer.MAXDIFF, 0.0) + unreal[1]
    return {
        "mean leverage (x)": float(lev["total"].mean()),
        "mean directional (x)": float(lev["directional"].mean()),
        "mean maxdiff (x)": float(lev["maxdiff"].mean()),
        "peak leverage (x)": float(lev["total"].max()),
        "idle leverage-hours": float((total_max - lev["total"]).clip(lower=0).sum() / 60),
        "directional fills": float(sum(1 for f in eng.fills if f.layer == Layer.DIRECTIONAL)),
        "maxdiff fills": float(sum(1 for f in eng.fills if f.layer == Layer.MAXDIFF)),
        "maxdiff plans listened": float(filled + expired),
        "maxdiff plans filled": float(filled),
        "maxdiff fill rate": float(filled / (filled + expired)) if filled + expired else float("nan"),
        "P/L directional ($)": pl_d,
        "P/L maxdiff ($)": pl_m,
        "P/L total ($)": pl_d + pl_m,
    }


def _unrealized(run: SessionRun) -> tuple[float, float]:
    """Unrealised P/L by layer of positions still open, at the broker's last marks."""
    marks = {q.symbol: q.mid for q in run.broker.quotes(run.engine.symbols).values()}
    d = sum((marks.get(x.symbol, x.entry.avg_price) - x.entry.avg_price) * x.qty * (1 if x.side == Side.BUY else -1)
            for x in run.engine.state.directional if x.qty)
    m = sum((marks.get(s.symbol, s.entry.avg_price) - s.entry.avg_price) * s.qty * (1 if s.side == Side.BUY else -1)
            for s in run.engine.state.slots if s.qty)
    return d, m


def load_session_bars(session: date, symbols: list[str], provider: DataProvider) -> SessionBars:
    """Minute bars of `symbols` for the session from a provider (demo or files)."""
    frame = provider.minute_bars(symbols, session)
    return SessionBars.from_frame(frame, f"{provider.name} minute bars for {session}")


def replay_session(
    params: Params,
    session: date,
    equity: float = 100_000.0,
    *,
    provider: DataProvider | None = None,
    plan: OrderPlan | None = None,
    bars: SessionBars | None = None,
    variants: tuple[str, ...] = VARIANTS,
    ledger: Ledger | None = None,
) -> ReplayResult:
    """Scan and build the day's plan (unless given), load the session's minute bars for the whole
    universe (unless given), and run each variant through its own SimBroker.

    `ledger` (optional) records the both-layers run (state, plans, fills) so `wolfkit status` can
    show it afterwards.
    """
    import time as _time

    from wolfkit.calibration import for_build
    from wolfkit.orders import build_order_plan
    from wolfkit.scan import run_scan

    if not (equity > 0 and equity < float("inf")):
        raise BadInputError(f"equity (--equity) {equity}: use a positive amount in USD")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise BadInputError(f"unknown replay variant(s) {unknown}; use {list(VARIANTS)}")
    if provider is None and (plan is None or bars is None):
        from wolfkit.data import get_provider

        provider = get_provider(params)
    synthetic = bool(getattr(provider, "synthetic", False)) if provider is not None else bool(plan and plan.synthetic_prices)
    if bars is None:
        assert provider is not None
        bars = load_session_bars(session, provider.universe()["symbol"].tolist(), provider)
    if plan is None:
        assert provider is not None
        scan = run_scan(params, session, provider)
        plan = build_order_plan(scan.opportunities, params, equity, None, session,
                                synthetic=synthetic, created_at=datetime.combine(session, datetime.min.time()),
                                calibration=for_build(params, session, provider)).plan
    runs: dict[str, SessionRun] = {}
    elapsed: dict[str, float] = {}
    for v in variants:
        t0 = _time.perf_counter()
        runs[v] = run_session(params, plan, bars, equity, maxdiff=(v == "both"),
                              ledger=ledger if v == "both" else None)
        elapsed[v] = _time.perf_counter() - t0
    return ReplayResult(session, equity, plan, runs, params.leverage.total_max, synthetic, elapsed)
