"""The live runners: the engine on a real clock, fed by polling or by Alpaca's trade-update stream.

- `run_polling` (e.g. against the emulator or the simulated broker): every `poll_seconds`, fetch
  quotes and the broker's order updates, and step the engine.
- `run_streaming`: trade updates from alpaca-py's `TradingStream` (`StreamSession`; a REST
  `reconcile` after every (re)connect, because updates sent while the socket was down are lost) and a
  quote-driven clock step.
- `run_live`: what `wolfkit intraday` runs — either runner until the stop time, riding out a 429 or
  an unknown outcome that escapes a step (a look-up that failed): wait, reconcile, go on; nothing is
  sent twice because every id a failed step may have sent is looked up first.
"""

from __future__ import annotations

import threading
import time as _time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from wolfkit.broker.base import BrokerUnavailable, OrderUpdate, Quote, RateLimited
from wolfkit.calendar import NY
from wolfkit.intraday.engine import IntradayEngine
from wolfkit.intraday.state import Market

if TYPE_CHECKING:
    from alpaca.trading.stream import TradingStream

    from wolfkit.broker.sim import SimBroker
    from wolfkit.data.base import DataProvider


def wall_clock() -> datetime:
    """Now in New York: the live engine's clock (the one place a live run reads the time)."""
    return datetime.now(NY)


def market_from_quotes(symbols: Sequence[str], quotes: dict[str, Quote]) -> Market:
    """A quote event as a `Market` aligned to `symbols` (high = low = close = the mid; NaN when absent)."""
    mid = np.array([quotes[s].mid if s in quotes else np.nan for s in symbols], dtype=float)
    return Market(mid, mid, mid)


class StreamSession:
    """Feeds alpaca-py's `TradingStream` trade updates into an engine, and reconciles over REST after
    every (re)connect: updates sent while the socket was down are lost, so the engine re-reads each of
    its orders by client id (`IntradayEngine.reconcile`) before trusting the stream again.

    The stream runs in its own thread (`run()` blocks); `lock` serialises it with the clock-driven
    `step` calls of the caller.
    """

    def __init__(self, engine: IntradayEngine, lock: threading.RLock | None = None):
        self.engine = engine
        self.lock = lock or threading.RLock()
        self.connects = 0

    def on_update(self, update: OrderUpdate) -> None:
        with self.lock:
            self.engine.on_update(update)

    async def on_trade_update(self, data: object) -> None:
        """One raw alpaca-py trade update (parsed by the Alpaca broker's `update_from_stream`)."""
        from wolfkit.broker.alpaca import update_from_stream

        update = update_from_stream(data)
        if update is not None:
            self.on_update(update)

    def on_connect(self) -> None:
        """Called after each successful (re)connect and authentication."""
        with self.lock:
            self.connects += 1
            self.engine.reconcile()

    def stream(self, key: str, secret: str, *, paper: bool = True, url_override: str | None = None) -> TradingStream:
        """A `TradingStream` wired to this session (subscribed; call `.run()` in a thread)."""
        from wolfkit.broker.alpaca import trade_update_stream

        return trade_update_stream(key, secret, self.on_update, self.on_connect, paper=paper,
                                   url_override=url_override)


def run_polling(
    engine: IntradayEngine,
    *,
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    until: datetime,
    poll_seconds: float,
    lock: threading.RLock | None = None,
    poll_updates: bool = True,
    max_steps: int | None = None,
    on_step: Callable[[int], None] | None = None,
) -> int:
    """Polling mode: every `poll_seconds`, fetch quotes (and, with `poll_updates`, the broker's order
    updates) and step the engine, until `until` or after `max_steps` steps. `on_step(n)` runs after
    step n (progress lines, a simulated market's next tick). Returns the steps."""
    lock = lock or threading.RLock()
    steps = 0
    while (t := now()) < until:
        with lock:
            quotes = engine.broker.quotes(engine.symbols)
            engine.step(t, market_from_quotes(engine.symbols, quotes), poll=poll_updates)
        steps += 1
        if on_step is not None:
            on_step(steps)
        if max_steps is not None and steps >= max_steps:
            break
        sleep(poll_seconds)
    return steps


def run_streaming(
    engine: IntradayEngine,
    key: str,
    secret: str,
    *,
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    until: datetime,
    poll_seconds: float,
    paper: bool = True,
    url_override: str | None = None,
    max_steps: int | None = None,
    on_step: Callable[[int], None] | None = None,
) -> StreamSession:
    """Live mode: trade updates from alpaca-py's `TradingStream` (its own thread; a REST reconcile on
    every (re)connect) and a quote-driven clock step every `poll_seconds` until `until` (or after
    `max_steps`; `on_step` as in `run_polling`)."""
    session = StreamSession(engine)
    stream = session.stream(key, secret, paper=paper, url_override=url_override)
    thread = threading.Thread(target=stream.run, name="wolfkit-trade-updates", daemon=True)
    thread.start()
    try:
        run_polling(engine, now=now, sleep=sleep, until=until, poll_seconds=poll_seconds, lock=session.lock,
                    poll_updates=False, max_steps=max_steps, on_step=on_step)
    finally:
        stream.stop()
        thread.join(timeout=10)
    return session


def sim_market_feed(broker: SimBroker, provider: DataProvider, symbols: Sequence[str],
                    clock: Callable[[], datetime]) -> Callable[[], None]:
    """For the simulated broker: a tick that moves its market to the data provider's latest quotes
    and lets resting orders fill on them (run after every step)."""

    def tick() -> None:
        q = provider.latest_quotes(list(symbols), clock())
        if len(q):
            broker.market.update(list(q["symbol"]), q["bid"].to_numpy(), q["ask"].to_numpy())
        broker.step()

    return tick


@dataclass(frozen=True)
class LiveRun:
    """How a live run ended."""

    steps: int
    why: str


def run_live(
    engine: IntradayEngine,
    *,
    mode: str,
    until: datetime,
    poll_seconds: float,
    clock: Callable[[], datetime] = wall_clock,
    sleep: Callable[[float], None] | None = None,
    keys: tuple[str, str] = ("", ""),
    paper: bool = True,
    max_steps: int | None = None,
    on_step: Callable[[int], None] | None = None,
    say: Callable[[str], None] = print,
) -> LiveRun:
    """Run the engine (`mode` "poll" or "stream") until `until` or `max_steps` steps, or Ctrl-C.

    A 429 or an unknown outcome that escapes a step (a failed look-up) is transient: say so, wait
    (at least `poll_seconds`, or the broker's reset time), `reconcile` — which looks up every id the
    failed step may have sent — and carry on with the steps left. `on_step(n)` runs after each step
    with the running total. The state is saved after every step, so Ctrl-C stops cleanly."""
    pause = sleep or (lambda s: _time.sleep(s))  # looked up at call time (tests patch time.sleep)
    done = 0

    def counted(_n: int) -> None:
        nonlocal done
        done += 1
        if on_step is not None:
            on_step(done)

    try:
        stale = False  # after a transient broker error: re-read every order before the next step
        while max_steps is None or done < max_steps:
            loop = dict(now=clock, sleep=pause, until=until, poll_seconds=poll_seconds,
                        max_steps=None if max_steps is None else max_steps - done, on_step=counted)
            try:
                if stale:
                    engine.reconcile()  # looks up the ids a failed step may have sent: nothing is sent twice
                    stale = False
                if mode == "stream":
                    run_streaming(engine, *keys, paper=paper, **loop)  # type: ignore[arg-type]
                else:
                    run_polling(engine, **loop)  # type: ignore[arg-type]
                break
            except (RateLimited, BrokerUnavailable) as e:  # transient: wait, re-read every order, go on
                wait = max(poll_seconds, getattr(e, "retry_after", None) or 1.0)
                say(f"broker: {e}; reconciling and continuing in {wait:g} s")
                pause(wait)
                stale = True
        why = f"reached {until:%H:%M} ET" if max_steps is None or done < max_steps else f"--max-steps {max_steps}"
    except KeyboardInterrupt:
        why = "Ctrl-C (state is saved; run the same command to resume)"
    return LiveRun(done, why)
