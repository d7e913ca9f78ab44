"""The trading vocabulary every layer shares: sides, order types, layers, plan states, strategies, tick
rounding and client order ids.

It imports nothing from wolfkit, so the scan, the pack, the orders file, the brokers and the intraday
engine can all speak it without importing each other. The values are the wire values of the
opportunities table and the orders file (`wolfkit.orders/1`): changing one changes the contract.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from enum import StrEnum

CLIENT_ID_MAX = 128  # Alpaca's limit on a client order id


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    def opposite(self) -> Side:
        """The side that would trade against this one (an exit, or a wash-trade risk while both are open)."""
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(StrEnum):
    DAY = "day"
    OPG = "opg"
    GTC = "gtc"


class Layer(StrEnum):
    """The two leverage layers: the directional pack, and the maxdiff plans in the room it leaves."""

    DIRECTIONAL = "directional"
    MAXDIFF = "maxdiff"


class PlanStatus(StrEnum):
    """A maxdiff plan's place in the day: listening (its order may rest), queued (waiting for room),
    filled, or expired."""

    LISTENING = "listening"
    QUEUED = "queued"
    FILLED = "filled"
    EXPIRED = "expired"


class Strategy(StrEnum):
    """How a position is traded: a take-profit bracket, a high/low bracket or simple open-to-close (the
    directional strategies a candidate may name), or the maxdiff layer's ramped limits."""

    TAKEPROFIT = "takeprofit"
    HIGHLOW = "highlow"
    SIMPLE = "simple"
    MAXDIFF = "maxdiff"

    @classmethod
    def directional(cls) -> tuple[Strategy, ...]:
        """The strategies an opportunities row may name (maxdiff is a layer of its own, not a row's choice)."""
        return (cls.TAKEPROFIT, cls.HIGHLOW, cls.SIMPLE)


class MaxdiffSide(StrEnum):
    """Which side of a maxdiff plan listens: buy at the predicted low, sell at the high, or both."""

    BUY = "buy"
    SELL = "sell"
    BOTH = "both"

    @property
    def buys(self) -> bool:
        """True when the plan may buy at its low target."""
        return self is not MaxdiffSide.SELL

    @property
    def sells(self) -> bool:
        """True when the plan may sell at its high target."""
        return self is not MaxdiffSide.BUY

    @property
    def opening_side(self) -> Side:
        """The side placed at the open: a `both` plan opens with its buy (its sell waits for the buy)."""
        return Side.SELL if self is MaxdiffSide.SELL else Side.BUY


class PriceSource(StrEnum):
    """Where a row's price came from: the pre-market quote, or the last close before the session."""

    QUOTE = "quote"
    CLOSE = "close"


def round_to_tick(price: float, side: Side | str | None = None) -> float:
    """Round a price to Alpaca's tick: 2 decimals at or above $1, 4 below.

    With a side, round in the trader's favour (buy limits down, sell limits up) so a limit never
    becomes more aggressive than asked; without one, to nearest.
    """
    if not math.isfinite(price) or price <= 0:
        raise ValueError(f"price must be a positive finite number, got {price}")
    decimals = 2 if price >= 1 else 4
    scale = 10**decimals
    x = price * scale
    if side == Side.BUY:
        v = math.floor(x + 1e-9)
    elif side == Side.SELL:
        v = math.ceil(x - 1e-9)
    else:
        v = math.floor(x + 0.5)
    return round(v / scale, decimals)


_ATTEMPT = re.compile(r"(.+)-r([1-9][0-9]*)")


@dataclass(frozen=True)
class ClientOrderId:
    """A client order id that knows the planned order it belongs to (`base`) and which attempt it is.

    Alpaca refuses a reused id forever (even after a cancel), so every resubmission of one planned
    order is a new attempt: attempt 0 is the base id, attempt n is the base plus `-r<n>` (the base cut
    so the whole stays within 128 characters). `str()` is the id sent to the broker.
    """

    base: str
    attempt: int = 0

    def __post_init__(self) -> None:
        if not self.base:
            raise ValueError("a client order id needs a non-empty base")
        if self.attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {self.attempt}")

    @classmethod
    def for_order(cls, run_id: str, plan: str, symbol: str, layer: Layer | str) -> ClientOrderId:
        """Attempt 0 of the deterministic id for run, plan, symbol and layer: rebuilding the same inputs
        gives the same ids (a re-run never double-submits); readable for humans, at most 88 characters."""
        digest = hashlib.sha1(f"{run_id}|{plan}|{symbol}|{layer}".encode()).hexdigest()[:10]
        return cls(f"wk-{run_id[:40]}-{plan[:16]}-{symbol[:12]}-{str(layer)[:3]}-{digest}")

    def retry(self, attempt: int) -> ClientOrderId:
        """Attempt `attempt` of the same planned order (0 is the base id itself)."""
        return ClientOrderId(self.base, attempt)

    def __str__(self) -> str:
        if self.attempt == 0:
            return self.base
        suffix = f"-r{self.attempt}"
        return self.base[: CLIENT_ID_MAX - len(suffix)] + suffix

    @classmethod
    def parse(cls, client_id: str, bases: set[str] | frozenset[str]) -> ClientOrderId | None:
        """The attempt of one of `bases` that `client_id` is, or None for any other id (a bracket leg, an
        order of someone else). A base cut to fit 128 characters is found among `bases`."""
        if client_id in bases:
            return cls(client_id)
        m = _ATTEMPT.fullmatch(client_id)
        if m is None:
            return None
        n = int(m.group(2))
        candidates = [m.group(1)] if m.group(1) in bases else (sorted(bases) if len(client_id) == CLIENT_ID_MAX else [])
        return next((cls(b, n) for b in candidates if str(cls(b, n)) == client_id), None)


def attempt_client_id(base: str, attempt: int) -> str:
    """The id of attempt `attempt` of the planned order whose base id is `base` (attempt 0 is `base`)."""
    return str(ClientOrderId(base, attempt))


def attempt_number(client_id: str) -> int:
    """The attempt number in a client id (its `-rN` suffix; 0 for a base id)."""
    m = _ATTEMPT.fullmatch(client_id)
    return int(m.group(2)) if m else 0


def is_attempt_of(base: str, client_id: str) -> bool:
    """True when `client_id` is `base` or one of its attempt ids."""
    return ClientOrderId.parse(client_id, {base}) is not None


def plan_attempt(client_id: str, bases: set[str] | frozenset[str]) -> tuple[str, int] | None:
    """(base id, attempt) when `client_id` is an attempt of one of `bases`; None for any other id."""
    hit = ClientOrderId.parse(client_id, bases)
    return None if hit is None else (hit.base, hit.attempt)
