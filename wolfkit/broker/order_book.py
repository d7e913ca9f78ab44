"""The simulated broker's order book: every order it accepted, indexed for the questions it asks.

By id, by client id (unique forever, as at Alpaca), bracket legs by parent, and the working orders
per symbol (only those are examined for fills, which keeps a 500-symbol replay fast). Each order
also carries what it reserves per remaining share of buying power. The JSON form of orders and
fills (`order_to_dict`, `fill_to_dict`, …) lives here too, for the broker's snapshot.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime, timezone
from typing import Any

from wolfkit.broker.base import BrokerOrder, Fill, OrderStatus
from wolfkit.domain import OrderType, Side, TimeInForce

_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


def copy_order(o: BrokerOrder) -> BrokerOrder:
    """A detached copy, so callers cannot change the broker's state by mutating what it returned."""
    return replace(o, legs=[replace(leg) for leg in o.legs])


def order_to_dict(o: BrokerOrder) -> dict[str, Any]:
    """A `BrokerOrder` as JSON-able data (enums as strings, times ISO-8601)."""
    d = asdict(o)
    d["submitted_at"] = o.submitted_at.isoformat() if o.submitted_at else None
    d["legs"] = [order_to_dict(leg) for leg in o.legs]
    for k in ("side", "type", "time_in_force", "status"):
        d[k] = str(d[k])
    return d


def order_from_dict(d: dict[str, Any]) -> BrokerOrder:
    """Inverse of `order_to_dict` (snapshots written before `extended_hours` existed read as False)."""
    d = dict(d)
    d["side"] = Side(d["side"])
    d["type"] = OrderType(d["type"])
    d["time_in_force"] = TimeInForce(d["time_in_force"])
    d["status"] = OrderStatus(d["status"])
    d["submitted_at"] = datetime.fromisoformat(d["submitted_at"]) if d["submitted_at"] else None
    d["legs"] = [order_from_dict(x) for x in d["legs"]]
    d.setdefault("extended_hours", False)
    return BrokerOrder(**d)


def fill_to_dict(f: Fill) -> dict[str, Any]:
    return {**asdict(f), "side": str(f.side), "timestamp": f.timestamp.isoformat()}


def fills_from_dicts(rows: list[dict[str, Any]]) -> list[Fill]:
    """Fills from a snapshot; older snapshots lacked `cum_qty`: it is the running sum per order."""
    cum: dict[str, int] = {}
    out = []
    for f in rows:
        cum[f["order_id"]] = f.get("cum_qty") or cum.get(f["order_id"], 0) + f["qty"]
        out.append(Fill(**{**f, "side": Side(f["side"]), "timestamp": datetime.fromisoformat(f["timestamp"]),
                           "cum_qty": cum[f["order_id"]]}))
    return out


class OrderBook:
    """Orders by id (legs too), client id, parent, and the working ones per symbol."""

    def __init__(self) -> None:
        self.orders: dict[str, BrokerOrder] = {}
        self.by_client: dict[str, str] = {}
        self.reserve_px: dict[str, float] = {}  # id -> USD reserved per remaining share
        self.parent: dict[str, str] = {}  # leg id -> parent id
        self.open_by_symbol: dict[str, set[str]] = {}

    def add(self, o: BrokerOrder, reserve_px: float, parent: BrokerOrder | None = None) -> None:
        """Register a new order (a bracket leg when `parent` is given)."""
        self.orders[o.id] = o
        self.by_client[o.client_order_id] = o.id
        self.reserve_px[o.id] = reserve_px
        if parent is not None:
            self.parent[o.id] = parent.id
            parent.legs.append(o)
        self.track(o)

    def track(self, o: BrokerOrder) -> None:
        """Keep the per-symbol working set in step with `o.status`."""
        ids = self.open_by_symbol.setdefault(o.symbol, set())
        if o.status.is_open:
            ids.add(o.id)
        else:
            ids.discard(o.id)
            if not ids:
                del self.open_by_symbol[o.symbol]

    def by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        i = self.by_client.get(client_order_id)
        return self.orders[i] if i is not None else None

    def parent_of(self, o: BrokerOrder) -> BrokerOrder | None:
        i = self.parent.get(o.id)
        return self.orders[i] if i is not None else None

    def submit_key(self, i: str) -> tuple[datetime, str]:
        o = self.orders[i]
        return (o.submitted_at or _EPOCH, i)

    def working(self, symbol: str | None = None) -> list[BrokerOrder]:
        """Open orders (legs included), oldest first; only `symbol`'s when given."""
        if symbol is None:
            ids = {i for ids in self.open_by_symbol.values() for i in ids}
        else:
            ids = set(self.open_by_symbol.get(symbol, ()))
        return [self.orders[i] for i in sorted(ids, key=self.submit_key)]

    def parents(self) -> list[BrokerOrder]:
        """Every order that is not a bracket leg, in submission order."""
        return [o for i, o in self.orders.items() if i not in self.parent]

    def reservation(self, o: BrokerOrder) -> float:
        """Buying power `o` holds now: its remaining shares at its reserve price (held legs: none)."""
        if not o.status.is_open or o.status == OrderStatus.HELD:
            return 0.0
        return o.remaining_qty * self.reserve_px.get(o.id, 0.0)

    def reserved(self) -> float:
        return sum(self.reservation(o) for o in self.working())

    def to_dict(self) -> dict[str, Any]:
        return {"orders": [order_to_dict(o) for o in self.parents()], "reserve_px": dict(self.reserve_px)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> OrderBook:
        book = cls()
        for d in state["orders"]:
            o = order_from_dict(d)
            legs, o.legs = o.legs, []
            book.add(o, 0.0)
            for leg in legs:
                book.add(leg, 0.0, parent=o)
        book.reserve_px = dict(state["reserve_px"])
        return book
