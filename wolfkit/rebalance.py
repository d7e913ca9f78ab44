"""Rebalancing against held positions: what trades when the new pack meets the shares already held.

With positions carried overnight (`intraday.close_directional_eod: false`), buying the new pack on top of
them would double what is held. `rebalance_orders` nets instead: it sells what left the pack, trims or
tops up what stays to the new target (whole shares), buys the new names, and leaves a name whose target
equals what is held alone. Only these deltas trade, so a name held on both days costs no round trip.
`wolfkit.orders.build_order_plan` (the orders file) and `wolfkit.backtest.engine` (the session loop)
both use it, so the plan and the backtest trade the same shares.

The directional pack is long-only: a short held on a symbol is refused (a buy that crosses from short to
long is refused by the broker too, and the pack never opened it), naming the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from wolfkit.domain import MaxdiffSide, Side
from wolfkit.errors import BadInputError
from wolfkit.symbols import Symbol


class Holding(BaseModel):
    """One position a plan was built against."""

    model_config = ConfigDict(extra="forbid")

    symbol: Symbol
    qty: int = Field(description="shares held, signed (negative: short)")
    price: float = Field(gt=0, description="the broker's mark when it was read (USD per share)")

    @field_validator("price")
    @classmethod
    def _finite_price(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"price must be a finite number, got {v}")
        return v


class Holdings(BaseModel):
    """The positions of the account a plan was sized against (`holdings` in the orders file): the plan
    trades only the difference between them and the new pack, so it executes only while the account
    holds exactly these."""

    model_config = ConfigDict(extra="forbid")

    account: str = Field(min_length=1, description="the account they were read from (kind:account_id@base_url)")
    read_at: datetime
    positions: list[Holding] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Holdings:
        seen: set[str] = set()
        for i, h in enumerate(self.positions):
            if h.symbol in seen:
                raise ValueError(f"positions[{i}]: {h.symbol} appears twice; one line per symbol")
            seen.add(h.symbol)
        return self

    def qty(self) -> dict[str, int]:
        """Shares held by symbol (zero lines left out)."""
        return {h.symbol: h.qty for h in self.positions if h.qty}

    def note(self, deltas: list[Delta]) -> str:
        """The plan summary's line: what the netting against these positions did."""
        counts = {a: sum(1 for d in deltas if d.action is a) for a in RebalanceAction}
        held, traded = self.qty(), {d.symbol for d in deltas}
        return (f"sized against {len(held)} held position(s) of {self.account} (read {self.read_at:%Y-%m-%d %H:%M} "
                f"UTC): {counts[RebalanceAction.EXIT]} exit(s), {counts[RebalanceAction.TRIM]} trim(s), "
                f"{counts[RebalanceAction.TOP_UP]} top-up(s), {counts[RebalanceAction.BUY]} new name(s), "
                f"{sum(1 for s in held if s not in traded)} held unchanged; only these differences trade")


class RebalanceAction(StrEnum):
    """What one delta does to a position."""

    BUY = "buy"  # a new name: nothing held
    TOP_UP = "top_up"  # held, the target is larger
    TRIM = "trim"  # held, the target is smaller but not zero
    EXIT = "exit"  # held, left the pack: sold entirely


@dataclass(frozen=True)
class Delta:
    """One trade that takes `held` shares of `symbol` to `target`."""

    symbol: str
    action: RebalanceAction
    held: int
    target: int

    @property
    def qty(self) -> int:
        """Shares to trade (always > 0)."""
        return abs(self.target - self.held)

    @property
    def side(self) -> Side:
        return Side.BUY if self.target > self.held else Side.SELL

    @property
    def reason(self) -> str:
        """Why the order exists, for the orders file and the report."""
        if self.action is RebalanceAction.EXIT:
            return f"left the pack: sells all {self.held} held"
        if self.action is RebalanceAction.TRIM:
            return f"trim: held {self.held}, target {self.target}"
        if self.action is RebalanceAction.TOP_UP:
            return f"top up: held {self.held}, target {self.target}"
        return f"new: target {self.target}"


def rebalance_orders(targets_qty: Mapping[str, int], held_qty: Mapping[str, int],
                     prices: Mapping[str, float] | None = None, source: str = "held positions") -> list[Delta]:
    """The trades that take `held_qty` to `targets_qty` (shares by symbol; a symbol absent is 0).

    Sells come first — exits, then trims, the largest value first when `prices` are given — because they
    free the buying power the buys spend; buys follow in the order of `targets_qty` (the pack's priority).
    A name whose target equals what is held does not trade. A short held is a `BadInputError` naming
    `source` and the fix: the directional pack holds longs only.
    """
    shorts = {s: q for s, q in held_qty.items() if q < 0}
    if shorts:
        shown = ", ".join(f"{s} {q:+d}" for s, q in sorted(shorts.items()))
        raise BadInputError(f"{source}: short position(s) {shown}; the directional pack is long-only and cannot "
                            "rebalance a short. Cover them first (or build against an account without them)")
    bad = {s: q for s, q in targets_qty.items() if q < 0}
    if bad:
        raise ValueError(f"target shares must be >= 0, got {bad}")
    px = prices or {}

    def value(d: Delta) -> float:
        return -d.qty * float(px.get(d.symbol, 0.0))

    exits = [Delta(s, RebalanceAction.EXIT, q, 0) for s, q in held_qty.items() if q > 0 and targets_qty.get(s, 0) == 0]
    trims, buys = [], []
    for s, target in targets_qty.items():
        held = int(held_qty.get(s, 0))
        if target == held or target == 0:
            continue
        if target < held:
            trims.append(Delta(s, RebalanceAction.TRIM, held, int(target)))
        else:
            buys.append(Delta(s, RebalanceAction.TOP_UP if held else RebalanceAction.BUY, held, int(target)))
    return sorted(exits, key=lambda d: (value(d), d.symbol)) + sorted(trims, key=lambda d: (value(d), d.symbol)) + buys


def maxdiff_opens(symbol: str, side: MaxdiffSide, directional_sides: Mapping[str, Side],
                  held: Mapping[str, int]) -> bool:
    """Whether a listening maxdiff plan places its order at the open: not on a held symbol (the carried
    position's exits work on it, and it would trade the held shares), and not against a directional
    order of the other side (an opposite-side order open on the symbol is a wash-trade risk). A `both`
    plan opens with its buy. The builder and the backtest apply the same rule."""
    if symbol in held:
        return False
    other = directional_sides.get(symbol)
    return other is None or other == side.opening_side
