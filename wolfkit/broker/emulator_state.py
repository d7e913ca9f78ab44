"""The emulator's own state: seeded fault switches, the rate-limit window, and counters.

Why faults: the executor's hard cases are transport failures that the in-process broker cannot
produce — a 504 *after* the order was accepted, a connection dropped without a response, bursts of
429s. `Faults` switches those on, seeded, per request; the app's `/_faults` route changes them at
run time and `/_stats` shows the counters.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from wolfkit.broker.sim import SimBroker
from wolfkit.broker.submission import SlidingWindowLimiter
from wolfkit.data.base import DataProvider

T = TypeVar("T")


@dataclass
class Faults:
    """Seeded fault switches; each probability is drawn once per `/v2` request (0 turns it off).

    - `latency_s`: every request waits this long before it is handled.
    - `rate_limit_burst`: a request starts a burst of `burst_length` 429s (itself included).
    - `server_error`: 500/502/503 (JSON, HTML or empty body) before anything is processed.
    - `timeout_after_accept`: an order write (POST/PATCH/DELETE under /v2/orders) is processed,
      then answered 504 with an HTML body — the order exists but the client saw an error.
    - `drop_connection`: the socket is closed without a response; half of these happen after
      the request was processed (outcome unknown to the client), half before.
    - `partial_fill`: the simulated broker's chance that a fill opportunity fills only part.
    """

    seed: int = 0
    latency_s: float = 0.0
    rate_limit_burst: float = 0.0
    burst_length: int = 3
    server_error: float = 0.0
    timeout_after_accept: float = 0.0
    drop_connection: float = 0.0
    partial_fill: float = 0.0

    def __post_init__(self) -> None:
        for f in ("rate_limit_burst", "server_error", "timeout_after_accept", "drop_connection", "partial_fill"):
            v = getattr(self, f)
            if not 0 <= v <= 1:
                raise ValueError(f"Faults.{f} is a probability in [0, 1], got {v}")
        if self.latency_s < 0 or self.burst_length < 1:
            raise ValueError("Faults.latency_s must be >= 0 and burst_length >= 1")


class Emulator:
    """The emulator's own state: faults and their RNG, the rate-limit window, counters."""

    def __init__(self, broker: SimBroker, faults: Faults, data: DataProvider | None,
                 rate_limit_per_minute: int | None, timer: Callable[[], float]):
        self.broker = broker
        self.data = data
        self.rate_limit_per_minute = rate_limit_per_minute
        self.timer = timer
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.limiter = SlidingWindowLimiter(rate_limit_per_minute, timer)
        self.set_faults(faults)

    def use(self, broker: SimBroker, faults: Faults | None = None) -> None:
        """Serve `broker` from now on (a fresh account per test run, one server)."""
        with self._lock:
            self.broker = broker
        self.set_faults(faults or self.faults)

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)
            self._burst_left = 0
            self.broker.partial_fill_prob = faults.partial_fill

    def draw(self) -> dict[str, bool]:
        """One request's fault draws (a fixed number of draws per request keeps runs reproducible)."""
        f = self.faults
        with self._lock:
            u = [self._rng.random() for _ in range(5)]
            burst = self._burst_left > 0 or u[0] < f.rate_limit_burst
            if burst:
                self._burst_left = (self._burst_left or f.burst_length) - 1
            return {
                "rate_limit": burst,
                "server_error": u[1] < f.server_error,
                "timeout_after_accept": u[2] < f.timeout_after_accept,
                "drop": u[3] < f.drop_connection,
                "drop_after": u[4] < 0.5,
            }

    def choice(self, options: list[T]) -> T:
        with self._lock:
            return self._rng.choice(options)

    def admit(self) -> float | None:
        """Count a request against the sliding-minute limit; seconds until reset when over it."""
        return self.limiter.admit()

    def remaining(self) -> int | None:
        return self.limiter.remaining()

    def count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1
