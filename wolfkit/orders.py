"""The orders file (`wolfkit.orders/1`): typed models, read and write, and the plan builder.

This is the contract between `wolfkit build` and `wolfkit execute`; `build_order_plan` makes one
from an opportunities table (diversify → pack → orders). Reading validates everything an
executor relies on (schema id, valid symbols, whole-share quantities as JSON integers within a sane
bound, finite prices, one order per symbol and side within a layer, client ids that cannot collide with
a resubmission's) and says which order and field is wrong. When a plan may be sent is the session
rule's (`wolfkit.market_hours`).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from wolfkit.config import Params
from wolfkit.domain import (
    ClientOrderId,
    Layer,
    MaxdiffSide,
    OrderType,
    PlanStatus,
    Side,
    Strategy,
    TimeInForce,
    round_to_tick,
)
from wolfkit.errors import BadInputError, InfeasibleError, WolfkitError
from wolfkit.symbols import Symbol

if TYPE_CHECKING:
    from wolfkit.calibration import Calibration
    from wolfkit.diversify import Targets
    from wolfkit.packing import Packing

SCHEMA_ID = "wolfkit.orders/1"
MAX_ORDER_QTY = 10_000_000  # shares in one order: far above any real pack, far below a typo like 1e20




def _whole_shares(v: object) -> int:
    """Only an integer is a share count: `"7"`, `true`, `7.0` or `1e20` in a hand-edited file is refused,
    not coerced (numpy integers from the builder are integers)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"must be a whole number of shares written as an integer (e.g. 7), got {v!r}")
    return int(v)


Shares = Annotated[int, BeforeValidator(_whole_shares), Field(le=MAX_ORDER_QTY)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False)


def _finite(v: float | None, name: str) -> float | None:
    if v is not None and not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v}")
    return v


class Account(_Model):
    """The account the plan was sized for."""

    equity: float = Field(gt=0)
    buying_power: float = Field(gt=0)
    multiplier: float = Field(ge=1)
    broker: Literal["sim", "paper", "live"] | None = Field(
        None, description="the broker kind the plan was built for (`execution.broker`); only a plan built for "
        "live trades live. Absent in files written before it was recorded")


class PlannedOrder(_Model):
    client_order_id: str = Field(min_length=1, max_length=128)
    symbol: Symbol
    side: Side
    qty: Shares = Field(gt=0, description="whole shares: a JSON integer > 0")
    type: OrderType
    limit_price: float | None = None
    time_in_force: TimeInForce
    layer: Layer
    strategy: Strategy
    sector: str
    cap_tier: str
    score: float
    weight: float = Field(ge=0)
    est_price: float = Field(gt=0)
    est_cost: float = Field(ge=0)
    priority: int = Field(ge=0)
    take_profit: float | None = None
    stop_loss: float | None = None

    @field_validator("score", "weight", "est_price", "est_cost", "take_profit", "stop_loss", "limit_price")
    @classmethod
    def _finite_fields(cls, v: float | None, info) -> float | None:
        return _finite(v, info.field_name)

    @model_validator(mode="after")
    def _limit(self) -> PlannedOrder:
        if self.type == OrderType.LIMIT:
            if self.limit_price is None or self.limit_price <= 0:
                raise ValueError("a limit order needs a positive limit_price")
            if round_to_tick(self.limit_price) != round(self.limit_price, 4 if self.limit_price < 1 else 2):
                raise ValueError(f"limit_price {self.limit_price} is not on the tick")
        elif self.limit_price is not None:
            raise ValueError("a market order must have limit_price null")
        return self


class MaxdiffPlan(_Model):
    symbol: Symbol
    high_target: float = Field(gt=0)
    low_target: float = Field(gt=0)
    side: MaxdiffSide
    avg_return: float
    status: PlanStatus
    rank: int = Field(ge=1)
    qty: Shares = Field(0, ge=0, description="shares planned when listening (0 when queued)")
    room_needed: float = Field(0.0, ge=0, description="USD of leverage room the plan needs")

    @model_validator(mode="after")
    def _targets(self) -> MaxdiffPlan:
        _finite(self.avg_return, "avg_return")
        if self.low_target > self.high_target:
            raise ValueError(f"low_target {self.low_target} > high_target {self.high_target}")
        return self


class Summary(_Model):
    positions: int = Field(ge=0)
    allocation: float = Field(ge=0)
    sector_weights: dict[str, float]
    cap_weights: dict[str, float]
    method: str = Field(pattern="^(optimal|greedy)$")
    objective: float
    leftover_cash: float
    notes: list[str] = Field(default_factory=list)


class OrderPlan(_Model):
    """The whole orders file."""

    schema_: str = Field(alias="schema")
    run_id: str = Field(min_length=1)
    as_of: date
    created_at: datetime
    account: Account
    params_digest: str
    synthetic_prices: bool = Field(False, description="true when built from the demo market")
    orders: list[PlannedOrder]
    maxdiff_plans: list[MaxdiffPlan] = Field(default_factory=list)
    summary: Summary

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _schema(cls, v: str) -> str:
        if v != SCHEMA_ID:
            raise ValueError(f"unknown schema {v!r}; this wolfkit reads {SCHEMA_ID!r}")
        return v

    @model_validator(mode="after")
    def _unique(self) -> OrderPlan:
        seen: dict[tuple[str, str, str], int] = {}
        ids: dict[str, int] = {}
        for i, o in enumerate(self.orders):
            key = (o.symbol, str(o.side), str(o.layer))
            if key in seen:
                raise ValueError(
                    f"orders[{i}]: {o.symbol} {o.side} appears twice in the {o.layer} layer "
                    f"(also orders[{seen[key]}]); consolidate them into one order"
                )
            seen[key] = i
            if o.client_order_id in ids:
                raise ValueError(f"orders[{i}]: client_order_id repeats orders[{ids[o.client_order_id]}]")
            ids[o.client_order_id] = i
        for i, o in enumerate(self.orders):  # a resubmission of one order must never be another order
            other = ClientOrderId.parse(o.client_order_id, ids.keys() - {o.client_order_id})
            if other is not None:
                raise ValueError(
                    f"orders[{i}]: client_order_id {o.client_order_id!r} is orders[{ids[other.base]}]'s id plus "
                    f"-r{other.attempt}, the id a resubmission of that order uses; give each order its own id "
                    "(rebuild the plan with `wolfkit build`)")
        return self

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def check_output_path(path: str | Path) -> Path:
    """`path` when an orders file can be written there; a `BadInputError` naming the fix when it is a
    folder or sits under a file (checked before the work of building a plan)."""
    p = Path(path)
    if p.is_dir():
        raise BadInputError(f"--out {p}: is a folder; pass a file name, e.g. {p / 'orders.json'}")
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise BadInputError(f"--out {p}: {parent} is a file, not a folder; pass a path in a folder")
    return p


def write_orders(plan: OrderPlan, path: str | Path) -> Path:
    """Write the orders file atomically (a crash never leaves half a file)."""
    p = check_output_path(path)
    tmp = p.with_suffix(p.suffix + ".tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(plan.to_json())
        tmp.replace(p)
    except OSError as e:
        raise BadInputError(f"{p}: cannot write the orders file ({e.strerror}); pass a writable path") from None
    return p


def read_orders(path: str | Path) -> OrderPlan:
    """Read and validate an orders file. Whether it may send orders now is the session rule's
    (`wolfkit.market_hours`), applied by the commands that send."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: orders file not found; create one with `wolfkit build … --out {p}`")
    try:
        raw = json.loads(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise BadInputError(f"{p}: byte {e.start} is not UTF-8 text; save the file as UTF-8 JSON") from None
    except json.JSONDecodeError as e:
        raise BadInputError(f"{p}: line {e.lineno}, column {e.colno}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise BadInputError(f"{p}: nested too deeply to be an orders file; check the file") from None
    try:
        plan = OrderPlan.model_validate(raw)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"])
            lines.append(f"{loc or '(top level)'}: {err['msg'].removeprefix('Value error, ')}")
        raise BadInputError(f"{p}: invalid orders file (nothing was submitted):\n  " + "\n  ".join(lines)) from None
    return plan


# ---------------------------------------------------------------- the plan builder


@dataclass(frozen=True)
class BuildResult:
    """What `build_order_plan` made: the orders file, and the tables behind it (for reports)."""

    plan: OrderPlan
    targets: Targets
    packing: Packing
    quarantined: pd.DataFrame


def _inputs_digest(opps: pd.DataFrame, equity: float, buying_power: float | None, method: str | None) -> str:
    blob = opps.sort_values("symbol").to_csv(index=False) + f"|{equity!r}|{buying_power!r}|{method}"
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def _opt(row: pd.Series, col: str) -> float | None:
    v = row.get(col)
    return None if v is None or pd.isna(v) else float(v)


def _check_position_count(directional: pd.DataFrame, params: Params, equity: float, source: str) -> None:
    """Whole shares can leave fewer positions than `portfolio.min_positions` (a small account, dear
    shares): that is infeasible, never a silently concentrated pack. The message names the binding rule
    and about how much equity the cheapest required names need."""
    pp = params.portfolio
    held = int((directional["qty"] > 0).sum())
    if held >= pp.min_positions:
        return
    missed = directional[directional["qty"] <= 0].sort_values("price", ascending=False)
    worst = missed.iloc[0] if len(missed) else directional.sort_values("price", ascending=False).iloc[0]
    prices = np.sort(directional["price"].to_numpy(float))[: pp.min_positions]
    need = max(prices.sum() / pp.target_allocation, prices[-1] / pp.position_max) if len(prices) else 0.0
    raise InfeasibleError(
        f"{source}: at equity ${equity:,.2f} only {held} of the {len(directional)} target positions can buy a whole "
        f"share, fewer than portfolio.min_positions {pp.min_positions}. Binding rule: equity too small for the "
        f"minimum position count at these share prices — e.g. {worst['symbol']} costs ${worst['price']:,.2f} a "
        f"share against a target of ${worst['weight'] * equity:,.2f} ({worst['weight']:.1%} of equity); the "
        f"{pp.min_positions} cheapest targets need about ${need:,.0f} of equity. Raise --equity or lower "
        "portfolio.min_positions; no orders were written")


def consolidate(orders: list[PlannedOrder]) -> list[PlannedOrder]:
    """One order per symbol, side and layer: quantities and costs add up; buys keep the lowest limit,
    sells the highest (one line such as "AAPL maxdiff buy @ 178.20 (55 shares)"); the first keeps its id."""
    merged: dict[tuple[str, Side, Layer], PlannedOrder] = {}
    for o in orders:
        key = (o.symbol, o.side, o.layer)
        if key not in merged:
            merged[key] = o
            continue
        m = merged[key]
        limit = m.limit_price
        if limit is not None and o.limit_price is not None:
            limit = min(limit, o.limit_price) if o.side == Side.BUY else max(limit, o.limit_price)
        qty = m.qty + o.qty
        merged[key] = m.model_copy(update={
            "qty": qty, "limit_price": limit, "weight": m.weight + o.weight,
            "est_cost": m.est_cost + o.est_cost, "priority": min(m.priority, o.priority),
        })
    return list(merged.values())


def build_order_plan(
    opps: pd.DataFrame,
    params: Params,
    equity: float,
    buying_power: float | None,
    as_of: date,
    method: str | None = None,
    run_id: str | None = None,
    created_at: datetime | None = None,
    synthetic: bool = False,
    source: str = "opportunities",
    calibration: Calibration | None = None,
) -> BuildResult:
    """Opportunities → validated `OrderPlan` (directional market/limit buys, maxdiff ramp-start limits).

    The default `run_id` is as_of + a digest of the parameters and inputs, so rebuilding the same
    inputs yields the same client order ids (a re-run never double-submits). `created_at` defaults to
    now (UTC); everything else is a pure function of the inputs. Priorities: directional orders first
    by weight then score, then maxdiff orders by rank. A `both` maxdiff plan places only its buy at
    the open; its sell waits until the buy is done (an opposite-side order on a symbol with an open
    order is a wash-trade risk). A sell plan on a symbol with a directional buy waits for the same reason.
    The plan says `synthetic_prices` when asked to or when the opportunities carry that flag (demo scans).
    `buying_power` None means the parameters' account (`Params.account`: `leverage.buying_power_multiple`
    x equity), the same in every command; the plan records the buying power it was built for.
    `calibration`: the session's walk-forward calibration (`wolfkit.calibration.for_session`) for
    `portfolio.objective: calibrated`; without one the raw objective is used and the notes say so.
    """
    # here, not at the top: the pack's solvers load scipy, and reading or executing an orders file never needs them
    from wolfkit.diversify import build_targets
    from wolfkit.opportunities import validate_opportunities
    from wolfkit.packing import pack_layers

    account = params.account(equity, buying_power)
    checked = validate_opportunities(opps, params, source)
    valid = checked.valid
    targets = build_targets(valid, params, method, calibration)
    packing = pack_layers(targets, valid, params, equity, account.buying_power, method=targets.method)
    _check_position_count(packing.directional, params, equity, source)
    if run_id is None:
        run_id = f"{as_of:%Y%m%d}-{params.digest()[:8]}-{_inputs_digest(valid, equity, account.buying_power, method)}"
    ex = params.execution
    rows = valid.set_index("symbol")
    orders: list[PlannedOrder] = []
    d = packing.directional.sort_values(["weight", "score", "symbol"], ascending=[False, False, True])
    for _, r in d.iterrows():
        if r["qty"] <= 0:
            continue
        src = rows.loc[r["symbol"]]
        limit = None
        if ex.order_type == OrderType.LIMIT:
            limit = round_to_tick(float(r["price"]) * (1 + ex.limit_offset), Side.BUY)
        strategy = src.get("strategy")
        orders.append(PlannedOrder(
            client_order_id=str(ClientOrderId.for_order(run_id, "pack", r["symbol"], Layer.DIRECTIONAL)),
            symbol=r["symbol"], side=Side.BUY, qty=int(r["qty"]), type=OrderType(ex.order_type),
            limit_price=limit, time_in_force=TimeInForce(ex.time_in_force), layer=Layer.DIRECTIONAL,
            strategy=Strategy(strategy) if isinstance(strategy, str) else Strategy.SIMPLE, sector=r["sector"],
            cap_tier=r["cap_tier"], score=float(r["score"]), weight=float(r["weight"]),
            est_price=float(r["price"]), est_cost=float(r["cost"]), priority=len(orders),
            take_profit=_opt(src, "take_profit"), stop_loss=_opt(src, "stop_loss"),
        ))
    held = {o.symbol for o in orders}
    plans: list[MaxdiffPlan] = []
    for _, r in packing.maxdiff.iterrows():
        side = MaxdiffSide(r["side"])
        plans.append(MaxdiffPlan(
            symbol=r["symbol"], high_target=float(r["high_target"]), low_target=float(r["low_target"]),
            side=side, avg_return=float(r["avg_return"]), status=PlanStatus(r["status"]),
            rank=int(r["rank"]), qty=int(r["qty"]), room_needed=float(r["room_needed"]),
        ))
        if r["status"] != PlanStatus.LISTENING or (side == MaxdiffSide.SELL and r["symbol"] in held):
            continue
        src = rows.loc[r["symbol"]]
        orders.append(PlannedOrder(
            client_order_id=str(ClientOrderId.for_order(run_id, "pack", r["symbol"], Layer.MAXDIFF)),
            symbol=r["symbol"], side=side.opening_side, qty=int(r["qty"]),
            type=OrderType.LIMIT, limit_price=float(r["limit_price"]), time_in_force=TimeInForce.DAY,
            layer=Layer.MAXDIFF, strategy=Strategy.MAXDIFF, sector=str(src["sector"]), cap_tier=str(src["cap_tier"]),
            score=float(src["score"]), weight=float(r["cost"]) / equity, est_price=float(r["limit_price"]),
            est_cost=float(r["cost"]), priority=len(orders), take_profit=None, stop_loss=None,
        ))
    orders = consolidate(orders)
    dcost = packing.directional.groupby("sector")["cost"].sum() / equity
    ccost = packing.directional.groupby("cap_tier")["cost"].sum() / equity
    raw = {
        "schema": SCHEMA_ID,
        "run_id": run_id,
        "as_of": as_of,
        "created_at": created_at or datetime.now(timezone.utc),
        "account": {"equity": equity, "buying_power": account.buying_power, "multiplier": account.multiplier,
                    "broker": params.execution.broker},
        "params_digest": params.digest(),
        "synthetic_prices": synthetic
        or bool("synthetic_prices" in opps.columns and opps["synthetic_prices"].fillna(False).astype(bool).any()),
        "orders": [o.model_dump() for o in orders],
        "maxdiff_plans": [p.model_dump() for p in plans],
        "summary": {
            "positions": int((packing.directional["qty"] > 0).sum()),
            "allocation": float(packing.directional["cost"].sum() / equity),
            "sector_weights": {str(k): float(v) for k, v in dcost.sort_values(ascending=False).items()},
            "cap_weights": {str(k): float(v) for k, v in ccost.items()},
            "method": targets.method,
            "objective": targets.objective,
            "leftover_cash": packing.leftover_cash,
            "notes": list(targets.notes),
        },
    }
    try:
        plan = OrderPlan.model_validate(raw)
    except ValidationError as e:  # a builder bug, never the user's input: say so plainly
        raise WolfkitError(f"internal: the built order plan does not validate ({e}); please report it") from None
    return BuildResult(plan=plan, targets=targets, packing=packing, quarantined=checked.quarantined)
