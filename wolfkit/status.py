"""The status screen: both layers and leverage usage, from the ledger and the broker.

What it answers at a glance during the session: which directional positions are open and how they
stand, which maxdiff plans are listening (k of the maximum active) and which wait in the queue (rank,
room needed), how much leverage each layer uses, and how much is still available to the maxdiff
layer right now (its time-of-day budget less what it uses).

`collect_status(ledger, params, broker=None)` builds a `StatusReport` (typed tables) from the
intraday engine's saved state, marking positions at the broker's quotes when a broker is given (else
at the engine's last prices). `format_status(report)` is the plain text (tests, notebooks, logs);
`render_status(report, console)` prints it with rich.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from rich.console import Console
from rich.table import Table

from wolfkit.broker.base import Broker
from wolfkit.calendar import NY
from wolfkit.config import Params
from wolfkit.domain import MaxdiffSide, PlanStatus, Side
from wolfkit.errors import BadInputError
from wolfkit.intraday import EngineState, LegState, exposure_of, maxdiff_budget
from wolfkit.ledger import Ledger, load_engine_state

DIRECTIONAL_COLUMNS = ["symbol", "qty", "avg_price", "strategy", "last", "unrealized_pl"]
LISTENING_COLUMNS = ["symbol", "side", "buy_at", "sell_at", "avg_return", "rank", "status"]
QUEUED_COLUMNS = ["symbol", "side", "price", "rank", "room_needed"]


@dataclass(frozen=True)
class Leverage:
    """USD amounts; leverage is each divided by `equity`."""

    equity: float
    directional: float
    maxdiff: float
    available_maxdiff: float
    maxdiff_share: float

    @property
    def total(self) -> float:
        return self.directional + self.maxdiff


@dataclass(frozen=True)
class StatusReport:
    """The status screen as tables.

    - `directional`: DIRECTIONAL_COLUMNS (qty signed: negative is short);
    - `listening`: LISTENING_COLUMNS, plans with an order working or waiting to be sent;
    - `queued`: QUEUED_COLUMNS, plans waiting for leverage, best rank first;
    - `max_active`: the most plans that may listen at once (`sizing.maxdiff_max_active`).
    """

    run_id: str
    as_of: datetime | None
    directional: pd.DataFrame
    listening: pd.DataFrame
    queued: pd.DataFrame
    max_active: int
    leverage: Leverage
    marks_from: str  # "broker" or "engine"


def status_from_state(state: EngineState, params: Params, marks: dict[str, float], equity: float | None = None,
                      marks_from: str = "engine") -> StatusReport:
    """The report for one engine state, positions marked at `marks` (symbol -> price)."""
    eq = equity if equity is not None else state.equity

    def mark(symbol: str, fallback: float) -> float:
        v = marks.get(symbol, state.last_price.get(symbol, fallback))
        return fallback if v is None or math.isnan(v) else v

    rows = []
    for d in state.directional:
        if d.qty == 0:
            continue
        sign = 1 if d.side == Side.BUY else -1
        last = mark(d.symbol, d.entry.avg_price)
        rows.append((d.symbol, sign * d.qty, d.entry.avg_price, d.strategy, last,
                     sign * d.qty * (last - d.entry.avg_price)))
    directional = pd.DataFrame(rows, columns=DIRECTIONAL_COLUMNS)

    slots = {s.id: s for s in state.slots}
    listening, queued = [], []
    for p in state.plans:
        if p.status == PlanStatus.LISTENING:
            s = slots.get(p.slot) if p.slot else None
            working = s.entry.limit_price if s is not None and s.entry.state != LegState.DONE else None
            buy_at = (working if s is not None and s.side == Side.BUY and working else p.low_target) \
                if MaxdiffSide(p.side).buys else None
            sell_at = (working if s is not None and s.side == Side.SELL and working else p.high_target) \
                if MaxdiffSide(p.side).sells else None
            listening.append((p.symbol, p.side, buy_at, sell_at, p.avg_return, p.rank, str(p.status)))
        elif p.status == PlanStatus.QUEUED:
            price = p.low_target if MaxdiffSide(p.side).buys else p.high_target
            queued.append((p.symbol, p.side, price, p.rank, p.room_needed if p.room_needed > 0 else price))
    e = exposure_of(state)
    now = (state.now or datetime.now(NY)).astimezone(NY)
    budget = maxdiff_budget(params, eq, e.directional, now.time())
    lev = Leverage(eq, e.directional, e.maxdiff, max(0.0, budget - e.maxdiff), params.leverage.maxdiff_share_at(now.time()))
    return StatusReport(state.run_id, state.now, directional, pd.DataFrame(listening, columns=LISTENING_COLUMNS),
                        pd.DataFrame(queued, columns=QUEUED_COLUMNS), params.sizing.maxdiff_max_active, lev,
                        marks_from)


def collect_status(ledger: Ledger, params: Params, broker: Broker | None = None,
                   run_id: str | None = None) -> StatusReport:
    """The latest (or `run_id`'s) engine state from the ledger, marked at the broker's quotes if given."""
    raw = load_engine_state(ledger, run_id)
    if raw is None:
        which = f"run {run_id!r}" if run_id else "any run"
        raise BadInputError(f"{ledger.path}: no intraday engine state for {which}; run `wolfkit replay` or the "
                            "intraday engine first, or pass --ledger with the ledger it wrote")
    state = EngineState.model_validate_json(raw)
    marks: dict[str, float] = {}
    equity = None
    if broker is not None:
        held = sorted({d.symbol for d in state.directional} | {s.symbol for s in state.slots})
        marks = {s: q.mid for s, q in broker.quotes(held).items()}
        equity = broker.account().equity
    return status_from_state(state, params, marks, equity, "broker" if broker is not None else "engine")


def _signed_usd(v: float) -> str:
    return f"{'-' if v < 0 else '+'}${abs(v):,.0f}"


def _k(usd: float) -> str:
    return f"${usd / 1000:,.1f}k" if abs(usd) >= 1000 else f"${usd:,.0f}"


def _sections(r: StatusReport) -> list[tuple[str, list[str]]]:
    lev = r.leverage
    eq = lev.equity
    d_lines = [
        f"{x.symbol}: {x.qty:+d} shares @ ${x.avg_price:,.2f} ({x.strategy}, {_signed_usd(x.unrealized_pl)} unrealized)"
        for x in r.directional.itertuples()
    ] or ["(none)"]
    l_lines = []
    for x in r.listening.itertuples():
        parts = []
        if x.buy_at is not None and not pd.isna(x.buy_at):
            parts.append(f"buy @ ${x.buy_at:,.2f}")
        if x.sell_at is not None and not pd.isna(x.sell_at):
            parts.append(f"sell @ ${x.sell_at:,.2f}")
        l_lines.append(f"{x.symbol}: {', '.join(parts)} (avg_return={x.avg_return:.4f}) [{x.status}]")
    q_lines = [f"{x.symbol}: {x.side} @ ${x.price:,.2f} (rank={x.rank}, needs {_k(x.room_needed)} room)"
               for x in r.queued.itertuples()]
    lev_lines = [
        f"Current: {lev.total / eq:.2f}x ({_k(lev.total)} / {_k(eq)} equity)",
        f"Directional: {lev.directional / eq:.2f}x ({_k(lev.directional)})",
        f"Maxdiff: {lev.maxdiff / eq:.2f}x ({_k(lev.maxdiff)})",
        f"Available for Maxdiff: {lev.available_maxdiff / eq:.2f}x ({_k(lev.available_maxdiff)}; "
        f"time-of-day share {lev.maxdiff_share:.0%})",
    ]
    return [
        ("DIRECTIONAL POSITIONS", d_lines),
        (f"MAXDIFF LISTENING ({len(r.listening)}/{r.max_active} active)", l_lines or ["(none)"]),
        (f"MAXDIFF QUEUED ({len(r.queued)} waiting for leverage)", q_lines or ["(none)"]),
        ("LEVERAGE USAGE", lev_lines),
    ]


def format_status(r: StatusReport) -> str:
    """The status screen as plain text: both layers, leverage per bucket, positions and plans."""
    out = [f"run {r.run_id} at {r.as_of:%Y-%m-%d %H:%M %Z}".rstrip() if r.as_of else f"run {r.run_id}",
           f"(positions marked at {r.marks_from} prices)", ""]
    for title, lines in _sections(r):
        out.append(f"=== {title} ===")
        out.extend(lines)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_status(r: StatusReport, console: Console) -> None:
    """The same screen with rich tables."""
    head = f"run {r.run_id}" + (f" at {r.as_of:%Y-%m-%d %H:%M}" if r.as_of else "")
    console.print(f"[bold]{head}[/] (marked at {r.marks_from} prices)")
    for title, frame in (("DIRECTIONAL POSITIONS", r.directional),
                         (f"MAXDIFF LISTENING ({len(r.listening)}/{r.max_active} active)", r.listening),
                         (f"MAXDIFF QUEUED ({len(r.queued)} waiting for leverage)", r.queued)):
        t = Table(title=title, title_justify="left", show_lines=False)
        for c in frame.columns:
            t.add_column(c, justify="right" if c not in ("symbol", "side", "strategy", "status") else "left")
        for row in frame.itertuples(index=False):
            t.add_row(*[_cell(v) for v in row])
        if frame.empty:
            t.add_row(*["—"] + [""] * (len(frame.columns) - 1))
        console.print(t)
    console.print("[bold]LEVERAGE USAGE[/]")
    for line in _sections(r)[-1][1]:
        console.print("  " + line, highlight=False)


def _cell(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 1 else f"{v:,.2f}"
    return str(v)
