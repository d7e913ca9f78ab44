"""Realised and unrealised P&L by layer, from fills: the cost rule `wolfkit status` and the snapshots use.

The cost rule is **average cost per symbol per layer**, fills taken in the order the ledger learnt
them: a fill that opens or adds to a layer's position in a symbol moves the average cost to the
size-weighted mean of the old average and the fill price; a fill against the position realises
(fill price − average cost) × shares closed (the sign flipped for a short) and leaves the average
unchanged; a fill larger than the position closes it and opens the rest on the other side at the fill
price. Alpaca charges no commission on these orders, so none is deducted. Unrealised P&L is
(mark − average cost) × signed quantity.

Which layer a fill belongs to (`layer_of_fill`): the layer of the planned order it executes (the
ledger's orders table), else the intraday engine's leg key (`d-…` directional, `m-…` maxdiff), else the
layer tag inside a wolfkit client order id (`…-dir-…`, `…-max-…`); a fill none of these name is
booked as directional and counted in `Book.unattributed`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from wolfkit.domain import Layer, Side


@dataclass(frozen=True)
class BookedFill:
    """One execution as the P&L book needs it."""

    symbol: str
    layer: Layer
    side: Side
    qty: int  # shares, positive
    price: float


@dataclass(frozen=True)
class Holding:
    """A layer's position in one symbol and what it has realised."""

    layer: Layer
    symbol: str
    qty: int  # signed: negative is short
    avg_cost: float  # average cost of the open quantity (0 when flat)
    realized: float

    def unrealized(self, mark: float) -> float:
        return self.qty * (mark - self.avg_cost)


@dataclass(frozen=True)
class Book:
    """Every (layer, symbol) the fills touched, flat ones included (they carry realised P&L)."""

    holdings: dict[tuple[Layer, str], Holding] = field(default_factory=dict)
    unattributed: int = 0  # fills no order, leg key or client id assigned to a layer (booked directional)
    cash_flow: float = 0.0  # Σ sells − Σ buys in USD: the cash the fills moved

    def realized(self, layer: Layer) -> float:
        return sum(h.realized for h in self.holdings.values() if h.layer == layer)

    def open(self) -> list[Holding]:
        """Holdings with shares, by symbol then layer."""
        return sorted((h for h in self.holdings.values() if h.qty), key=lambda h: (h.symbol, h.layer))

    def net_qty(self, symbol: str) -> int:
        return sum(h.qty for h in self.holdings.values() if h.symbol == symbol)


def layer_of_fill(plan_client_id: str | None, client_order_id: str,
                  order_layers: Mapping[str, Layer]) -> Layer | None:
    """The layer a fill belongs to (see the module docstring), or None when nothing names one."""
    if plan_client_id and plan_client_id in order_layers:
        return order_layers[plan_client_id]
    if plan_client_id and plan_client_id.startswith("d-"):
        return Layer.DIRECTIONAL
    if plan_client_id and plan_client_id.startswith("m-"):
        return Layer.MAXDIFF
    for layer in Layer:
        if f"-{str(layer)[:3]}-" in client_order_id:
            return layer
    return None


def apply_fill(h: Holding, side: Side, qty: int, price: float) -> Holding:
    """The holding after one fill, by the average-cost rule."""
    signed = qty if side == Side.BUY else -qty
    if h.qty == 0 or (h.qty > 0) == (signed > 0):
        new_qty = h.qty + signed
        avg = (abs(h.qty) * h.avg_cost + qty * price) / abs(new_qty)
        return Holding(h.layer, h.symbol, new_qty, avg, h.realized)
    closed = min(qty, abs(h.qty))
    direction = 1 if h.qty > 0 else -1
    realized = h.realized + closed * (price - h.avg_cost) * direction
    new_qty = h.qty + signed
    if new_qty == 0:
        avg = 0.0
    elif (new_qty > 0) == (h.qty > 0):
        avg = h.avg_cost
    else:  # flipped: the rest opens on the other side at this price
        avg = price
    return Holding(h.layer, h.symbol, new_qty, avg, realized)


def book_fills(fills: Iterable[BookedFill], unattributed: int = 0) -> Book:
    """The P&L book of `fills`, taken in the order given (the order the ledger learnt them)."""
    holdings: dict[tuple[Layer, str], Holding] = {}
    cash = 0.0
    for f in fills:
        if f.qty <= 0:
            continue
        key = (f.layer, f.symbol)
        h = holdings.get(key) or Holding(f.layer, f.symbol, 0, 0.0, 0.0)
        holdings[key] = apply_fill(h, f.side, f.qty, f.price)
        cash += f.qty * f.price * (1 if f.side == Side.SELL else -1)
    return Book(holdings, unattributed, cash)
