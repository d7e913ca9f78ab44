"""The one submission path: how an order request reaches a broker exactly once, whoever sends it.

The batch executor (`wolfkit.execute`) and the intraday engine (`wolfkit.intraday`) both submit
through `submit`, size a refused order with `resize_after_403`, and keep under a broker's request
limit with `SlidingWindowLimiter` — the same class the simulator and the emulator answer 429 with.

The rules, in one place:

- **Idempotent.** A duplicate client id (422) means the order exists: it is looked up and adopted.
  An unknown outcome (5xx, timeout, dropped connection) is looked up by client id before anything
  is resent, and resent under the SAME id only when the broker does not hold it.
- **429** waits `retry_after` and retries the same id.
- **Insufficient buying power (403)** ends the attempt; the caller resizes with
  `resize_after_403` and submits the next attempt under a NEW client id (`wolfkit.clientid`).
- Any other refusal is final, with the broker's reason.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable

from wolfkit.broker.base import (
    Broker,
    BrokerOrder,
    BrokerUnavailable,
    DuplicateClientOrderId,
    InsufficientBuyingPower,
    OrderRejected,
    OrderRequest,
    RateLimited,
)

WINDOW_SECONDS = 60.0


class SlidingWindowLimiter:
    """At most `per_minute` requests in any sliding 60-second window, shared by all threads
    (`per_minute=None`: no limit).

    A sliding window (not a token bucket, which would allow a burst of capacity + rate in one
    minute), so a client that blocks on `acquire` never reaches a broker's own per-minute limit, and a
    server that answers with `admit` refuses exactly what that broker would refuse.
    """

    def __init__(self, per_minute: int | None, timer: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.timer = timer
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds `acquire` slept, in total

    def admit(self) -> float | None:
        """Count one request now; None when it is within the limit, else the seconds until the
        window has room (the request is then not counted: the server refuses it with a 429)."""
        if self.per_minute is None:
            return None
        with self._lock:
            t = self.timer()
            while self._calls and self._calls[0] <= t - WINDOW_SECONDS:
                self._calls.popleft()
            if len(self._calls) >= self.per_minute:
                return max(0.0, self._calls[0] + WINDOW_SECONDS - t)
            self._calls.append(t)
            return None

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Block (through `sleep`) until one more request fits the window, and count it."""
        while (wait := self.admit()) is not None:
            self.waited += wait
            sleep(wait)

    def remaining(self) -> int | None:
        """Requests the window still allows now (None: no limit)."""
        if self.per_minute is None:
            return None
        with self._lock:
            t = self.timer()
            return max(0, self.per_minute - sum(1 for c in self._calls if c > t - WINDOW_SECONDS))


# ---- submit ---------------------------------------------------------------------------------------


class Outcome(StrEnum):
    """How one submission ended."""

    ACCEPTED = "accepted"  # the broker answered with the order
    ADOPTED = "adopted"  # duplicate client id: the order that exists was looked up and adopted
    RECONCILED = "reconciled"  # no answer (5xx, timeout), and the look-up found the order
    DUPLICATE_MISSING = "duplicate_missing"  # the broker says the id exists but cannot find it
    INSUFFICIENT_BP = "insufficient_bp"  # 403: resize (`resize_after_403`) under the next attempt id
    REJECTED = "rejected"  # refused for good (wash trade, sub-penny, …): final, with the reason
    UNKNOWN = "unknown"  # every try ended without a known answer: a later look-up decides


@dataclass(frozen=True)
class Submitted:
    outcome: Outcome
    order: BrokerOrder | None = None
    error: Exception | None = None

    @property
    def at_broker(self) -> bool:
        return self.order is not None


def retry_after(e: RateLimited) -> float:
    """Seconds to wait after a 429 (the broker's reset time, at least 50 ms; 1 s when it gave none)."""
    return max(0.05, e.retry_after) if e.retry_after is not None else 1.0


def backoff(i: int) -> float:
    """Seconds to wait before try `i + 1` after an unknown outcome (exponential, at most 5 s)."""
    return min(5.0, 0.1 * 2**i)


def submit(broker: Broker, request: OrderRequest, **kw: Any) -> Submitted:
    """Submit `request` under its client id until the outcome is known (`deliver`'s rules)."""
    return deliver(lambda: broker.submit(request), request.client_order_id, **kw)


def deliver(
    send: Callable[[], BrokerOrder],
    client_id: str,
    *,
    lookup: Callable[[str], BrokerOrder | None],
    max_attempts: int,
    limiter: SlidingWindowLimiter | None = None,
    sleep: Callable[[float], None] | None = None,
    on_rate_limited: Callable[[RateLimited], None] | None = None,
    on_unknown: Callable[[BrokerUnavailable], None] | None = None,
    final: tuple[type[Exception], ...] = (OrderRejected,),
) -> Submitted:
    """Run `send` (a submit or a replace that creates the order `client_id`) until its outcome is
    known (see the module docstring).

    `lookup` reads an order by client id (a failing look-up raises to the caller: nothing is resent
    before the broker has been asked); `on_rate_limited`/`on_unknown` let the caller record each 429
    and unknown outcome; `final` are the refusals that end it (REJECTED; a replace also counts any
    other broker error: the old order then stands).
    """
    pause = sleep or (lambda s: time.sleep(s))  # looked up at call time (tests patch time.sleep)
    for i in range(max_attempts):
        if limiter is not None:
            limiter.acquire(pause)
        try:
            return Submitted(Outcome.ACCEPTED, send())
        except DuplicateClientOrderId as e:
            found = lookup(client_id)
            return Submitted(Outcome.ADOPTED, found) if found is not None else Submitted(Outcome.DUPLICATE_MISSING,
                                                                                          error=e)
        except RateLimited as e:
            if on_rate_limited is not None:
                on_rate_limited(e)
            pause(retry_after(e))
        except BrokerUnavailable as e:
            if on_unknown is not None:
                on_unknown(e)
            found = lookup(client_id)
            if found is not None:
                return Submitted(Outcome.RECONCILED, found)
            pause(backoff(i))
        except InsufficientBuyingPower as e:
            return Submitted(Outcome.INSUFFICIENT_BP, error=e)
        except final as e:  # OrderRejected includes WashTradeRejected
            return Submitted(Outcome.REJECTED, error=e)
    return Submitted(Outcome.UNKNOWN)


# ---- the 403 resize rule --------------------------------------------------------------------------


@dataclass(frozen=True)
class Resize:
    """What a 403 allows: `qty` shares (0: not one) at `per_share` USD of the reported `buying_power`."""

    qty: int
    per_share: float
    buying_power: float


def charged_per_share(e: InsufficientBuyingPower, qty: int, ref_price: float) -> float:
    """USD per share the broker charges for this order: the 403 body's `cost_basis` / qty when it is
    plausible (above our reference, at most 10×: e.g. a market buy priced at the ask plus Alpaca's
    buffer), else our own reference price."""
    if e.cost_basis and qty and ref_price < e.cost_basis / qty <= 10 * ref_price:
        return e.cost_basis / qty
    return ref_price


def resize_after_403(e: InsufficientBuyingPower, qty: int, ref_price: float,
                     account_buying_power: Callable[[], float]) -> Resize:
    """After an insufficient-buying-power 403 on `qty` shares priced `ref_price` each: the most shares
    (fewer than `qty`) the buying power the broker reported pays for at what it charges per share.
    `account_buying_power` is read only when the 403 body carried no buying power."""
    bp = e.buying_power if e.buying_power is not None else account_buying_power()
    per_share = charged_per_share(e, qty, ref_price)
    fit = min(qty - 1, int(math.floor(max(0.0, bp) / per_share + 1e-9))) if per_share > 0 else 0
    return Resize(max(0, fit), per_share, bp)
