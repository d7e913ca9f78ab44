"""The orders file (`wolfkit.orders/1`): typed models, read and write, and the plan builder.

This is the contract between `wolfkit build` and `wolfkit execute`; `build_order_plan` makes one
from an opportunities table (diversify → pack → orders). Reading validates everything an
executor relies on (schema id, valid symbols, whole-share quantities as JSON integers within a sane
bound, finite prices, one order per symbol and side within a layer, client ids that cannot collide with
a resubmission's) and says which order and field is wrong. When a plan may be sent is the session
rule's (`wolfkit.market_hours`).

A plan built against held positions (`holdings`, carried overnight) trades only the difference between
them and the new pack (`wolfkit.rebalance`): its directional sells (exits, trims) come first, and each
directional order says what it does to the position (`rebalance`, `reason`).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Sequence

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
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
from wolfkit.exits import trail_amount
from wolfkit.rebalance import Delta, Holdings, RebalanceAction, maxdiff_opens, rebalance_orders
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


def _without_unset(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """`data` without `keys` whose value is None: a plan built as if flat writes the file it always wrote
    (the rebalancing fields exist only in plans built against held positions)."""
    return {k: v for k, v in data.items() if not (k in keys and v is None)}


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
    rebalance: RebalanceAction | None = Field(
        None, description="what the order does to a held position (buy new, top up, trim, exit) when the plan "
        "was built against held positions (`holdings`); null when it was built as if the account were flat")
    reason: str | None = Field(None, description="why the order exists, e.g. 'trim: held 12, target 8'")
    sector: str
    cap_tier: str
    score: float
    weight: float = Field(ge=0)
    est_price: float = Field(gt=0)
    est_cost: float = Field(ge=0)
    priority: int = Field(ge=0)
    take_profit: float | None = None
    stop_loss: float | None = None
    trail_amount: float | None = Field(
        None, gt=0, description="a trailing stop: the intraday engine raises the stop to (highest price since "
        "the entry − this, USD) and never lowers it; absent or null: the stop stays where it is")
    time_stop_minutes: int | None = Field(
        None, ge=1, le=390, description="the intraday engine closes the position at market this many minutes "
        "after the session's open; absent or null: no time stop")

    @model_serializer(mode="wrap")
    def _omit_rebalance(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_unset(handler(self), ("rebalance", "reason"))

    @field_validator("score", "weight", "est_price", "est_cost", "take_profit", "stop_loss", "limit_price",
                     "trail_amount")
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
    holdings: Holdings | None = Field(
        None, description="the positions the plan was built against (`--broker` at build time); null: built as "
        "if the account held nothing")
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

    @model_serializer(mode="wrap")
    def _omit_holdings(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _without_unset(handler(self), ("holdings",))

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


def _inputs_digest(opps: pd.DataFrame, equity: float, buying_power: float | None, method: str | None,
                   holdings: Holdings | None = None) -> str:
    blob = opps.sort_values("symbol").to_csv(index=False) + f"|{equity!r}|{buying_power!r}|{method}"
    if holdings is not None:  # built against other positions: another plan, other client ids
        blob += "|" + ",".join(f"{s}:{q}" for s, q in sorted(holdings.qty().items()))
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


def _directional_order(delta: Delta, run_id: str, params: Params, rows: pd.DataFrame, pack: pd.DataFrame,
                       price: float, rebalancing: bool, priority: int) -> PlannedOrder:
    """The planned order of one rebalance delta: a buy (with the scan's bracket) of a new name or a
    top-up, or a sell of a trim or an exit; `rebalance`/`reason` only when built against holdings."""
    ex = params.execution
    src = rows.loc[delta.symbol] if delta.symbol in rows.index else None
    limit = None
    if ex.order_type == OrderType.LIMIT:
        offset = ex.limit_offset if delta.side == Side.BUY else -ex.limit_offset
        limit = round_to_tick(price * (1 + offset), delta.side)
    strategy = src.get("strategy") if src is not None else None
    buy = delta.side == Side.BUY
    in_pack = delta.symbol in pack.index
    return PlannedOrder(
        client_order_id=str(ClientOrderId.for_order(run_id, "pack", delta.symbol, Layer.DIRECTIONAL)),
        symbol=delta.symbol, side=delta.side, qty=delta.qty, type=OrderType(ex.order_type), limit_price=limit,
        time_in_force=TimeInForce(ex.time_in_force), layer=Layer.DIRECTIONAL,
        strategy=Strategy(strategy) if isinstance(strategy, str) else Strategy.SIMPLE,
        rebalance=delta.action if rebalancing else None, reason=delta.reason if rebalancing else None,
        sector=str(pack.at[delta.symbol, "sector"]) if in_pack else (str(src["sector"]) if src is not None else "unknown"),
        cap_tier=str(pack.at[delta.symbol, "cap_tier"]) if in_pack else (
            str(src["cap_tier"]) if src is not None else "unknown"),
        score=float(pack.at[delta.symbol, "score"]) if in_pack else (float(src["score"]) if src is not None else 0.0),
        weight=float(pack.at[delta.symbol, "weight"]) if in_pack else 0.0,
        est_price=price, est_cost=round(delta.qty * price, 2) if rebalancing else (
            float(pack.at[delta.symbol, "cost"]) if in_pack else delta.qty * price),
        priority=priority,
        take_profit=_opt(src, "take_profit") if buy and src is not None else None,
        stop_loss=_opt(src, "stop_loss") if buy and src is not None else None,
        trail_amount=trail_amount(price, _opt(src, "stop_loss"), params.exits) if buy and src is not None else None,
        time_stop_minutes=params.exits.time_stop_minutes if buy else None,
    )


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
    holdings: Holdings | None = None,
    calibration: Calibration | None = None,
    notes: Sequence[str] = (),
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

    `holdings`: the positions the account holds (carried overnight). The pack is then sized against them
    (`wolfkit.rebalance.rebalance_orders`): sells of what left the pack and trims first (priority 0…),
    then top-ups and new names; a name already at its target does not trade. The plan records them, and
    each directional order says what it does (`rebalance`, `reason`). None: built as if flat (as before).
    A maxdiff plan on a held symbol, or with a directional order of the other side, does not place its
    order at the open (`maxdiff_opens`).

    `notes`: what the caller adds to the plan's summary notes (e.g. the sector tilt it applied).
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
    targets = build_targets(valid, params, method, calibration, equity=equity)
    packing = pack_layers(targets, valid, params, equity, account.buying_power, method=targets.method)
    _check_position_count(packing.directional, params, equity, source)
    if run_id is None:
        run_id = (f"{as_of:%Y%m%d}-{params.digest()[:8]}-"
                  f"{_inputs_digest(valid, equity, account.buying_power, method, holdings)}")
    rows = valid.set_index("symbol")
    d = packing.directional.sort_values(["weight", "score", "symbol"], ascending=[False, False, True])
    d = d[d["qty"] > 0]
    held = holdings.qty() if holdings is not None else {}
    prices = {**{h.symbol: h.price for h in holdings.positions}, **dict(zip(d["symbol"], d["price"].astype(float)))} \
        if holdings is not None else dict(zip(d["symbol"], d["price"].astype(float)))
    deltas = rebalance_orders(dict(zip(d["symbol"], d["qty"].astype(int))), held, prices,
                              source=f"{source}: the positions of {holdings.account}" if holdings else source)
    targets_by_symbol = d.set_index("symbol")
    orders = [_directional_order(delta, run_id, params, rows, targets_by_symbol, prices[delta.symbol],
                                 holdings is not None, priority)
              for priority, delta in enumerate(deltas)]
    directional_sides = {o.symbol: o.side for o in orders}
    plans: list[MaxdiffPlan] = []
    for _, r in packing.maxdiff.iterrows():
        side = MaxdiffSide(r["side"])
        plans.append(MaxdiffPlan(
            symbol=r["symbol"], high_target=float(r["high_target"]), low_target=float(r["low_target"]),
            side=side, avg_return=float(r["avg_return"]), status=PlanStatus(r["status"]),
            rank=int(r["rank"]), qty=int(r["qty"]), room_needed=float(r["room_needed"]),
        ))
        if r["status"] != PlanStatus.LISTENING or not maxdiff_opens(r["symbol"], side, directional_sides, held):
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
    raw: dict[str, object] = {
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
            "notes": [*notes, *targets.notes, *targets.rules_skipped]
            + ([holdings.note(deltas)] if holdings is not None else []),
        },
        "holdings": holdings.model_dump() if holdings is not None else None,
    }
    try:
        plan = OrderPlan.model_validate(raw)
    except ValidationError as e:  # a builder bug, never the user's input: say so plainly
        raise WolfkitError(f"internal: the built order plan does not validate ({e}); please report it") from None
    return BuildResult(plan=plan, targets=targets, packing=packing, quarantined=checked.quarantined)
