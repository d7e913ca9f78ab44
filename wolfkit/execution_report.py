"""What an execution did: per planned order (`OrderResult`) and in total (`ExecutionReport`).

Built from the ledger after a run (`order_result`), so a re-run reports the same orders and fills
the broker holds, never a count inflated by repeated updates. Deployed money is said in two parts:
what has filled (shares bought at their fill prices) and what open orders still commit (their
unfilled shares at the limit, or the ask for a market order). `format_execution` is the one plain-text
summary: `wolfkit execute` prints it, and so does `wolfkit execute --notebook` (the notebook records it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from wolfkit.broker.base import Quote
from wolfkit.domain import Side
from wolfkit.ledger import LedgerOrder, OrderState, Sizing
from wolfkit.orders import PlannedOrder

NO_FILLS_YET = ("accepted orders wait at the broker until they trade (outside market hours, until the next open); "
                "`wolfkit status` shows the fills as they happen")


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
    filled_value: float  # USD: shares filled x their average price (buys)
    open_value: float  # USD: the open remainder at its limit, or the ask for a market order (buys)

    @property
    def deployed(self) -> float:
        """Filled plus still committed by the open remainder (USD)."""
        return self.filled_value + self.open_value


@dataclass(frozen=True)
class FillRow:
    """One execution as the ledger holds it, in the order it happened."""

    at: str  # ISO time the broker reported
    symbol: str
    side: str
    qty: int
    price: float
    client_order_id: str

    @classmethod
    def from_ledger(cls, row: dict[str, Any]) -> FillRow:
        return cls(str(row["at"]), str(row["symbol"]), str(row["side"]), int(row["qty"]), float(row["price"]),
                   str(row["client_order_id"]))


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
    fill_log: list[FillRow] = field(default_factory=list)  # the run's fills in the order they happened

    @property
    def filled_value(self) -> float:
        return sum(o.filled_value for o in self.orders)

    @property
    def open_value(self) -> float:
        return sum(o.open_value for o in self.orders)

    @property
    def deployed(self) -> float:
        """Filled plus open commitments (USD); `filled_value` and `open_value` say which is which."""
        return self.filled_value + self.open_value

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
        """One row per planned order (documented columns: those of `OrderResult`, and `deployed`)."""
        df = pd.DataFrame([asdict(o) for o in self.orders], columns=list(OrderResult.__dataclass_fields__))
        df["deployed"] = df["filled_value"] + df["open_value"]
        return df

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "broker": self.broker, "execution": self.execution, "equity": self.equity,
            "planned": len(self.orders), "accepted": self.accepted, "unresolved": self.unresolved,
            "rejected": self.rejected,
            "deployed": round(self.deployed, 2), "deployed_pct": round(self.deployed_pct, 4),
            "filled_value": round(self.filled_value, 2), "open_value": round(self.open_value, 2),
            "insufficient_bp_rejections": self.insufficient_bp_rejections, "rate_limited": self.rate_limited,
            "unknown_outcomes": self.unknown_outcomes, "states": self.counts,
            "fills": self.fills, "filled_shares": self.filled_shares, "notes": self.notes,
            "started_at": self.started_at.isoformat(), "finished_at": self.finished_at.isoformat(),
            "ledger": self.ledger_path,
        }


def order_result(row: LedgerOrder, quotes: dict[str, Quote], planned: PlannedOrder,
            held_back: str = "") -> OrderResult:
    """A planned order's outcome from its ledger row; its open remainder (buys) is valued at its limit,
    or at the broker's ask for a market order."""
    filled = opened = 0.0
    if row.state.at_broker and row.side == Side.BUY:
        filled = row.filled_qty * (row.avg_price or 0.0)
        if row.state in (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED):
            q = quotes.get(row.symbol)
            limit = row.submitted_limit if row.submitted_type == "limit" else None
            px = limit if limit is not None else (q.ask if q else planned.est_price)
            opened = (row.qty - row.filled_qty) * px
    return OrderResult(
        plan_client_id=row.plan_client_id, symbol=row.symbol, side=Side(row.side), layer=row.layer,
        priority=row.priority, state=row.state, planned_qty=row.planned_qty,
        submitted_qty=row.qty if row.state not in (OrderState.SKIPPED, OrderState.PLANNED) else 0,
        filled_qty=row.filled_qty, avg_price=row.avg_price,
        attempts=row.attempt + 1 if row.client_order_id else 0,
        client_order_id=row.client_order_id, broker_order_id=row.broker_order_id, sizing=row.sizing,
        reason=held_back if row.state == OrderState.PLANNED and held_back else row.reason,
        filled_value=round(filled, 2), open_value=round(opened, 2),
    )


def _time(at: str) -> str:
    """An ISO timestamp as HH:MM:SS in New York time (the text as given when it does not parse)."""
    from wolfkit.calendar import NY

    try:
        t = datetime.fromisoformat(at)
    except ValueError:
        return at
    return (t.astimezone(NY) if t.tzinfo else t).strftime("%H:%M:%S")


def deployed_text(r: ExecutionReport) -> str:
    """Deployed money in its two parts, e.g. "deployed $105,700 (105.7% of equity $100,000) = filled $0 (0
    fills) + open orders $105,700 (not filled yet)"."""
    eq = r.equity if r.equity > 0 else float("nan")
    return (f"deployed ${r.deployed:,.0f} ({r.deployed / eq:.1%} of equity ${r.equity:,.0f}) = filled "
            f"${r.filled_value:,.0f} ({r.filled_value / eq:.1%}; {r.fills} fills, {r.filled_shares:,} shares) + open "
            f"orders ${r.open_value:,.0f} ({r.open_value / eq:.1%}; committed, not filled yet)")


def format_execution(r: ExecutionReport, log: str | Path | None = None) -> str:
    """The plain-text summary of a run: notes, every order, the final rejections, the fills in the order
    they happened, deployed = filled + open orders, and where the log and the ledger are."""
    lines = [f"note: {n}" for n in r.notes]
    lines.append(f"run {r.run_id} on {r.broker} (execution {r.execution})")
    head = ("#", "symbol", "side", "layer", "state", "qty/planned", "filled", "avg price", "attempts", "reason")
    rows = [(str(o.priority), o.symbol, str(o.side), o.layer, str(o.state), f"{o.submitted_qty}/{o.planned_qty}",
             str(o.filled_qty), f"{o.avg_price:,.2f}" if o.avg_price else "", str(o.attempts), o.reason)
            for o in r.orders]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    for row in (head, *rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    lines += [f"rejected (final): {o.symbol} {o.side}: {o.reason}" for o in r.orders if o.state == OrderState.REJECTED]
    if r.fill_log:
        lines.append(f"fills as they happened ({len(r.fill_log)}, from the ledger):")
        total = 0.0
        for f in r.fill_log:
            total += f.qty * f.price
            lines.append(f"  {_time(f.at)} {f.symbol} {f.side} {f.qty:,} @ {f.price:,.2f} = ${f.qty * f.price:,.0f} "
                         f"(running ${total:,.0f})")
    else:
        lines.append(f"no fills yet: {NO_FILLS_YET}")
    lines.append(f"accepted {r.accepted}/{len(r.orders)}, rejected {r.rejected}, unresolved {r.unresolved}; "
                 + deployed_text(r))
    if log is not None:
        lines.append(f"log: {log}; ledger: {r.ledger_path}")
    return "\n".join(lines)
