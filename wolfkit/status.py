"""The status screen: positions, open orders, P&L and leverage by layer, after `execute`, `intraday` or `replay`.

What it answers at a glance: which positions the account holds and in which layer (directional,
maxdiff), which orders are still working and how much of each has filled, what each layer has
realised and what it shows unrealised (cost rule: `wolfkit.pnl`, average cost per symbol per layer),
how much leverage each layer uses and how much is still available to the maxdiff layer right now; when
the intraday engine ran, also which maxdiff plans are listening and which wait in the queue; and the
daily P&L history from the ledger's end-of-day snapshots (`wolfkit.snapshots`).

`build_status(...)` is the pure function from (fills, open orders, broker positions, marks, account)
to a typed `StatusReport`; `wolfkit.status_sources.collect_status` gathers those from the ledger and
the broker. `format_status(report)` is the plain text (tests, notebooks, logs); `render_status(report,
console)` prints it with rich.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

import pandas as pd
from rich.console import Console
from rich.table import Table

from wolfkit.broker.base import Position
from wolfkit.calendar import NY
from wolfkit.config import Params
from wolfkit.domain import Layer, MaxdiffSide, PlanStatus, Side
from wolfkit.intraday import EngineState, LegState, exposure_of
from wolfkit.pnl import Book, BookedFill, book_fills
from wolfkit.snapshots import DailySnapshot, format_history

UNATTRIBUTED = "unattributed"  # broker shares the ledger's fills do not explain (no layer)
POSITION_COLUMNS = ["symbol", "layer", "qty", "avg_price", "last", "market_value", "unrealized_pl", "strategy"]
ORDER_COLUMNS = ["symbol", "side", "layer", "filled_qty", "qty", "price", "state", "client_order_id"]
LISTENING_COLUMNS = ["symbol", "side", "buy_at", "sell_at", "avg_return", "rank", "status"]
QUEUED_COLUMNS = ["symbol", "side", "price", "rank", "room_needed"]


class Source(StrEnum):
    """Where a number on the screen comes from."""

    BROKER = "broker"
    LEDGER = "ledger"  # the ledger's fills (and the engine's saved state)
    ENGINE = "engine"  # the intraday engine's last prices
    FILLS = "last fill"  # no quote: the last fill price


@dataclass(frozen=True)
class OpenOrder:
    """An order still working: `filled_qty` of `qty` shares done so far (a partial fill shows here)."""

    symbol: str
    side: Side
    layer: Layer | None
    qty: int
    filled_qty: int
    price: float | None  # its limit (or a stop leg's stop) price; None for a market order
    state: str
    client_order_id: str


@dataclass(frozen=True)
class AccountView:
    """The account's equity and cash, and where they come from (the broker, or start + fills)."""

    name: str
    equity: float
    cash: float
    source: Source


@dataclass(frozen=True)
class LayerStatus:
    """One layer's P&L (USD, cumulative since the ledger's first fill) and exposure."""

    layer: Layer
    realized: float
    unrealized: float
    gross: float  # Σ |qty| × mark of its open positions
    positions: int

    @property
    def pnl(self) -> float:
        return self.realized + self.unrealized


@dataclass(frozen=True)
class Leverage:
    """USD committed at cost by layer (open positions at average cost plus working entry orders);
    leverage is each divided by `equity`. `*_held` is the filled part (positions at average cost, from
    the fills); the rest of each layer is what its open orders commit."""

    equity: float
    directional: float
    maxdiff: float
    available_maxdiff: float
    maxdiff_share: float
    directional_held: float = 0.0
    maxdiff_held: float = 0.0

    @property
    def total(self) -> float:
        return self.directional + self.maxdiff

    @property
    def held(self) -> float:
        return self.directional_held + self.maxdiff_held

    @property
    def open_orders(self) -> float:
        """What working orders commit beyond the filled positions (USD)."""
        return max(0.0, self.total - self.held)


@dataclass(frozen=True)
class StatusReport:
    """The status screen as typed tables.

    - `positions`: POSITION_COLUMNS, one row per symbol and layer (qty signed: negative is short);
      layer `unattributed` holds broker shares the ledger's fills do not explain;
    - `open_orders`: ORDER_COLUMNS, working orders with filled/ordered quantity;
    - `layers`: P&L and gross exposure per layer; `leverage`: committed exposure per layer;
    - `listening` / `queued`: the engine's maxdiff plans (empty when no engine ran);
    - `history`: the daily P&L history (`wolfkit.snapshots.daily_history`).
    """

    account: AccountView
    as_of: datetime
    positions: pd.DataFrame
    open_orders: pd.DataFrame
    layers: dict[Layer, LayerStatus]
    leverage: Leverage
    positions_from: Source
    marks_from: Source
    run_id: str | None = None  # the engine run whose plans are shown
    listening: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=LISTENING_COLUMNS))
    queued: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=QUEUED_COLUMNS))
    max_active: int = 0
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)

    @property
    def realized(self) -> float:
        return sum(x.realized for x in self.layers.values())

    @property
    def unrealized(self) -> float:
        return sum(x.unrealized for x in self.layers.values())

    def snapshot(self, session: date) -> DailySnapshot:
        """The end-of-day snapshot of this report for `session`."""
        d, m = self.layers[Layer.DIRECTIONAL], self.layers[Layer.MAXDIFF]
        return DailySnapshot(
            account=self.account.name, session=session, taken_at=self.as_of, source=str(self.positions_from),
            equity=round(self.account.equity, 2), cash=round(self.account.cash, 2),
            realized_directional=round(d.realized, 2), realized_maxdiff=round(m.realized, 2),
            unrealized_directional=round(d.unrealized, 2), unrealized_maxdiff=round(m.unrealized, 2),
            gross_directional=round(d.gross, 2), gross_maxdiff=round(m.gross, 2),
            positions=int((self.positions["qty"] != 0).sum()) if len(self.positions) else 0,
        )


def _mark(marks: Mapping[str, float], symbol: str, fallback: float) -> float:
    v = marks.get(symbol)
    return fallback if v is None or not math.isfinite(v) or v <= 0 else float(v)


def _position_rows(book: Book, positions: Sequence[Position] | None, marks: Mapping[str, float],
                   strategies: Mapping[str, str], notes: list[str]) -> list[tuple]:
    rows = []
    for h in book.open():
        last = _mark(marks, h.symbol, h.avg_cost)
        rows.append((h.symbol, str(h.layer), h.qty, h.avg_cost, last, h.qty * last, h.unrealized(last),
                     strategies.get(h.symbol, "") if h.layer == Layer.DIRECTIONAL else ""))
    if positions is None:
        return rows
    held = {p.symbol: p for p in positions if p.qty}
    for sym in sorted(set(held) | {h.symbol for h in book.open()}):
        ours, theirs = book.net_qty(sym), held[sym].qty if sym in held else 0
        if ours == theirs:
            continue
        p = held.get(sym)
        last = _mark(marks, sym, p.avg_entry_price if p is not None else 0.0)
        avg = p.avg_entry_price if p is not None else last  # the broker holds none: nothing unrealised there
        gap = theirs - ours
        rows.append((sym, UNATTRIBUTED, gap, avg, last, gap * last, gap * (last - avg), ""))
        notes.append(f"{sym}: the broker holds {theirs:+d} shares, the ledger's fills {ours:+d}; the {gap:+d} "
                     "difference is shown as unattributed (fills the ledger has not seen, or trades made outside "
                     "wolfkit) and counted in neither layer")
    return rows


def _held(book: Book, layer: Layer) -> float:
    """The layer's open positions at average cost (USD): what has filled and is still held."""
    return sum(abs(h.qty) * h.avg_cost for h in book.open() if h.layer == layer)


def _committed(book: Book, orders: Sequence[OpenOrder], layer: Layer, marks: Mapping[str, float]) -> float:
    """Open positions at average cost plus the remainder of working orders that open or grow a position
    (at their limit; a market order at the mark)."""
    held = _held(book, layer)
    working = 0.0
    for o in orders:
        if o.layer != layer:
            continue
        h = book.holdings.get((layer, o.symbol))
        qty = h.qty if h is not None else 0
        if qty == 0 or (qty > 0) == (o.side == Side.BUY):
            working += max(0, o.qty - o.filled_qty) * (o.price or _mark(marks, o.symbol, h.avg_cost if h else 0.0))
    return held + working


def build_status(params: Params, *, fills: Sequence[BookedFill], unattributed_fills: int = 0,
                 open_orders: Sequence[OpenOrder], positions: Sequence[Position] | None,
                 marks: Mapping[str, float], account: AccountView, now: datetime,
                 marks_from: Source = Source.BROKER, engine: EngineState | None = None,
                 strategies: Mapping[str, str] | None = None, history: pd.DataFrame | None = None,
                 notes: Sequence[str] = ()) -> StatusReport:
    """The status report from the ledger's fills (in the order it learnt them), the working orders, the
    broker's positions (None: no broker reachable, positions from the fills) and the marks (symbol ->
    price). `account` from the broker is taken as it is; an `account` whose source is the ledger carries
    the starting equity (as equity and cash), to which the fills' P&L and cash flow are added. With an
    engine state its maxdiff plans are shown and its committed exposure is the leverage."""
    notes = list(notes)
    book = book_fills(fills, unattributed_fills)
    if book.unattributed:
        notes.append(f"{book.unattributed} fill(s) name no layer (no planned order, engine leg or wolfkit client "
                     "id): booked as directional")
    missing = sorted({h.symbol for h in book.open()} - {s for s, v in marks.items() if v and math.isfinite(v)})
    if missing:
        notes.append(f"no price for {', '.join(missing[:10])}: marked at average cost (unrealised 0)")
    rows = _position_rows(book, positions, marks, strategies or {}, notes)
    frame = pd.DataFrame(rows, columns=POSITION_COLUMNS)
    layers = {}
    for layer in Layer:
        mine = frame[frame["layer"] == str(layer)]
        layers[layer] = LayerStatus(layer, book.realized(layer), float(mine["unrealized_pl"].sum()),
                                    float(mine["market_value"].abs().sum()), int((mine["qty"] != 0).sum()))
    orders = pd.DataFrame([(o.symbol, str(o.side), str(o.layer) if o.layer else UNATTRIBUTED, o.filled_qty, o.qty,
                            o.price, o.state, o.client_order_id) for o in open_orders], columns=ORDER_COLUMNS)
    if account.source == Source.LEDGER:  # it carries the starting equity: add what the fills made
        pnl = sum(x.pnl for x in layers.values())
        account = AccountView(account.name, account.equity + pnl, account.cash + book.cash_flow, Source.LEDGER)
    eq = account.equity
    t = now.astimezone(NY)
    if engine is not None:
        e = exposure_of(engine)
        d_used, m_used = e.directional, e.maxdiff
    else:
        d_used, m_used = (_committed(book, open_orders, layer, marks) for layer in (Layer.DIRECTIONAL, Layer.MAXDIFF))
    budget = params.maxdiff_budget(eq, d_used, t.time())
    lev = Leverage(eq, d_used, m_used, max(0.0, budget - m_used), params.leverage.maxdiff_share_at(t.time()),
                   min(d_used, _held(book, Layer.DIRECTIONAL)), min(m_used, _held(book, Layer.MAXDIFF)))
    listening, queued = _plans(engine) if engine is not None else (
        pd.DataFrame(columns=LISTENING_COLUMNS), pd.DataFrame(columns=QUEUED_COLUMNS))
    return StatusReport(account, now, frame, orders, layers, lev, Source.BROKER if positions is not None else
                        Source.LEDGER, marks_from, engine.run_id if engine is not None else None, listening, queued,
                        params.sizing.maxdiff_max_active, history if history is not None else pd.DataFrame(), notes)


def _plans(state: EngineState) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The engine's listening and queued maxdiff plans."""
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
    return pd.DataFrame(listening, columns=LISTENING_COLUMNS), pd.DataFrame(queued, columns=QUEUED_COLUMNS)


# ---- text ---------------------------------------------------------------------------------------


def _signed_usd(v: float) -> str:
    return f"{'-' if v < 0 else '+'}${abs(v):,.2f}"


def _k(usd: float) -> str:
    sign = "-" if usd < 0 else ""
    return f"{sign}${abs(usd) / 1000:,.1f}k" if abs(usd) >= 1000 else f"{sign}${abs(usd):,.0f}"


def _sections(r: StatusReport) -> list[tuple[str, list[str]]]:
    lev = r.leverage
    eq = lev.equity if lev.equity > 0 else float("nan")
    p_lines = [
        f"{x.symbol} [{x.layer}]: {x.qty:+d} shares @ ${x.avg_price:,.2f}, last ${x.last:,.2f} "
        f"({_signed_usd(x.unrealized_pl)} unrealized{', ' + x.strategy if x.strategy else ''})"
        for x in r.positions.itertuples()
    ]
    o_lines = [f"{x.symbol} {x.side} [{x.layer}]: filled {x.filled_qty}/{x.qty}"
               f"{f' @ ${x.price:,.2f}' if x.price and not pd.isna(x.price) else ' market'}"
               f" ({x.state}) {x.client_order_id}" for x in r.open_orders.itertuples()]
    pnl_lines = [f"{str(x.layer).capitalize()}: realized {_signed_usd(x.realized)}, unrealized "
                 f"{_signed_usd(x.unrealized)}, total {_signed_usd(x.pnl)} ({x.positions} positions, gross "
                 f"{_k(x.gross)})" for x in r.layers.values()]
    pnl_lines.append(f"Total: realized {_signed_usd(r.realized)}, unrealized {_signed_usd(r.unrealized)}, "
                     f"total {_signed_usd(r.realized + r.unrealized)}")
    pnl_lines.append(f"Equity {_k(r.account.equity)}, cash {_k(r.account.cash)} (from the {r.account.source})")
    lev_lines = [
        f"Current: {lev.total / eq:.2f}x ({_k(lev.total)} / {_k(lev.equity)} equity) = filled {_k(lev.held)} "
        f"held at cost + open orders {_k(lev.open_orders)}",
        f"Directional: {lev.directional / eq:.2f}x ({_k(lev.directional)}: filled {_k(lev.directional_held)} + open "
        f"orders {_k(lev.directional - lev.directional_held)})",
        f"Maxdiff: {lev.maxdiff / eq:.2f}x ({_k(lev.maxdiff)}: filled {_k(lev.maxdiff_held)} + open orders "
        f"{_k(lev.maxdiff - lev.maxdiff_held)})",
        f"Available for Maxdiff: {lev.available_maxdiff / eq:.2f}x ({_k(lev.available_maxdiff)}; "
        f"time-of-day share {lev.maxdiff_share:.0%})",
    ]
    out = [
        (f"POSITIONS (from the {r.positions_from})", p_lines or ["(none)"]),
        (f"OPEN ORDERS ({len(r.open_orders)})", o_lines or ["(none)"]),
        ("P&L BY LAYER (average cost per symbol per layer)", pnl_lines),
    ]
    if r.run_id is not None:
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
        out += [(f"MAXDIFF LISTENING ({len(r.listening)}/{r.max_active} active)", l_lines or ["(none)"]),
                (f"MAXDIFF QUEUED ({len(r.queued)} waiting for leverage)", q_lines or ["(none)"])]
    out.append(("LEVERAGE USAGE", lev_lines))
    if len(r.history):
        out.append(("DAILY P&L", format_history(r.history).rstrip("\n").split("\n")))
    if r.notes:
        out.append(("NOTES", r.notes))
    return out


def _head(r: StatusReport) -> str:
    run = f", engine run {r.run_id}" if r.run_id else ""
    return f"account {r.account.name} at {r.as_of.astimezone(NY):%Y-%m-%d %H:%M %Z}{run}"


def format_status(r: StatusReport) -> str:
    """The status screen as plain text: positions, open orders, P&L and leverage by layer, plans, history."""
    out = [_head(r), f"(positions from the {r.positions_from}, marked at {r.marks_from} prices)", ""]
    for title, lines in _sections(r):
        out.append(f"=== {title} ===")
        out.extend(lines)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_status(r: StatusReport, console: Console) -> None:
    """The same screen with rich tables for the positions, orders and plans."""
    console.print(f"[bold]{_head(r)}[/] (positions from the {r.positions_from}, marked at {r.marks_from} prices)",
                  highlight=False)
    tables = {"POSITIONS": r.positions, "OPEN ORDERS": r.open_orders, "MAXDIFF LISTENING": r.listening,
              "MAXDIFF QUEUED": r.queued}
    for title, lines in _sections(r):
        frame = next((f for k, f in tables.items() if title.startswith(k)), None)
        if frame is None:
            console.print(f"[bold]{title}[/]", highlight=False)
            for line in lines:
                console.print("  " + line, highlight=False, markup=False, soft_wrap=True)
            continue
        t = Table(title=title, title_justify="left", show_lines=False)
        for c in frame.columns:
            t.add_column(c, justify="left" if c in ("symbol", "side", "layer", "strategy", "status", "state",
                                                    "client_order_id") else "right")
        for row in frame.itertuples(index=False):
            t.add_row(*[_cell(v) for v in row])
        if frame.empty:
            t.add_row(*["—"] + [""] * (len(frame.columns) - 1))
        console.print(t)


def _cell(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 1 else f"{v:,.2f}"
    return str(v).replace("[", "\\[")
