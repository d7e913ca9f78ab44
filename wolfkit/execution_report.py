"""What an execution did: per planned order (`OrderResult`) and in total (`ExecutionReport`).

Built from the ledger after a run (`order_result`), so a re-run reports the same orders and fills
the broker holds, never a count inflated by repeated updates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from wolfkit.broker.base import Quote
from wolfkit.domain import Side
from wolfkit.ledger import LedgerOrder, OrderState, Sizing
from wolfkit.orders import PlannedOrder


@dataclass(frozen=True)
class OrderResult:
    """One planned order after execution."""

    plan_client_id: str
    symbol: str
    side: Side
    layer: str
    priority: int
    state: OrderState
    planned_qty: int
    submitted_qty: int
    filled_qty: int
    avg_price: float | None
    attempts: int  # client ids used (1 = the planned id only)
    client_order_id: str | None
    broker_order_id: str | None
    sizing: Sizing
    reason: str
    deployed: float  # USD: filled value + open remainder at the reference price (buys)


@dataclass(frozen=True)
class ExecutionReport:
    """What a run did, per planned order and in total."""

    run_id: str
    broker: str
    execution: int  # 1 for the first execution of this plan, 2 for a re-run, …
    equity: float
    orders: list[OrderResult]
    insufficient_bp_rejections: int  # 403s met (each then resized or resolved with a reason)
    rate_limited: int
    unknown_outcomes: int
    started_at: datetime
    finished_at: datetime
    counts: dict[str, int] = field(default_factory=dict)
    ledger_path: str = ""  # the ledger file this run was recorded in (absolute)
    fills: int = 0  # executions the ledger holds for this run (one per broker execution, never re-counted)
    filled_shares: int = 0
    notes: list[str] = field(default_factory=list)  # what the user must know: a replaced plan, a vanished ledger

    @property
    def deployed(self) -> float:
        return sum(o.deployed for o in self.orders)

    @property
    def deployed_pct(self) -> float:
        return self.deployed / self.equity if self.equity > 0 else 0.0

    @property
    def accepted(self) -> int:
        return sum(o.state.at_broker for o in self.orders)

    @property
    def unresolved(self) -> int:
        """Orders whose outcome is unknown or that were not sent yet: a re-run reconciles and sends them."""
        return sum(o.state in (OrderState.SUBMITTING, OrderState.PLANNED) for o in self.orders)

    @property
    def rejected(self) -> int:
        """Orders refused for good (by the broker, or no buying power for one share): final, with the reason."""
        return sum(o.state == OrderState.REJECTED for o in self.orders)

    def table(self) -> pd.DataFrame:
        """One row per planned order (documented columns: those of `OrderResult`)."""
        return pd.DataFrame([asdict(o) for o in self.orders], columns=list(OrderResult.__dataclass_fields__))

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "broker": self.broker, "execution": self.execution, "equity": self.equity,
            "planned": len(self.orders), "accepted": self.accepted, "unresolved": self.unresolved,
            "rejected": self.rejected,
            "deployed": round(self.deployed, 2), "deployed_pct": round(self.deployed_pct, 4),
            "insufficient_bp_rejections": self.insufficient_bp_rejections, "rate_limited": self.rate_limited,
            "unknown_outcomes": self.unknown_outcomes, "states": self.counts,
            "fills": self.fills, "filled_shares": self.filled_shares, "notes": self.notes,
            "started_at": self.started_at.isoformat(), "finished_at": self.finished_at.isoformat(),
            "ledger": self.ledger_path,
        }


def order_result(row: LedgerOrder, quotes: dict[str, Quote], planned: PlannedOrder,
            held_back: str = "") -> OrderResult:
    """A planned order's outcome from its ledger row; `deployed` values what is still open at the
    broker's quote (buys)."""
    deployed = 0.0
    if row.state.at_broker and row.side == Side.BUY:
        deployed = row.filled_qty * (row.avg_price or 0.0)
        if row.state in (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED):
            q = quotes.get(row.symbol)
            limit = row.submitted_limit if row.submitted_type == "limit" else None
            px = limit if limit is not None else (q.ask if q else planned.est_price)
            deployed += (row.qty - row.filled_qty) * px
    return OrderResult(
        plan_client_id=row.plan_client_id, symbol=row.symbol, side=Side(row.side), layer=row.layer,
        priority=row.priority, state=row.state, planned_qty=row.planned_qty,
        submitted_qty=row.qty if row.state not in (OrderState.SKIPPED, OrderState.PLANNED) else 0,
        filled_qty=row.filled_qty, avg_price=row.avg_price,
        attempts=row.attempt + 1 if row.client_order_id else 0,
        client_order_id=row.client_order_id, broker_order_id=row.broker_order_id, sizing=row.sizing,
        reason=held_back if row.state == OrderState.PLANNED and held_back else row.reason,
        deployed=round(deployed, 2),
    )
