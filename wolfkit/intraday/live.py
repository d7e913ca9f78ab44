"""The live runners: the engine on a real clock, fed by polling or by Alpaca's trade-update stream.

- `run_polling` (e.g. against the emulator or the simulated broker): every `poll_seconds`, fetch
  quotes and the broker's order updates, and step the engine.
- `run_streaming`: trade updates from alpaca-py's `TradingStream` (`StreamSession`) and a
  quote-driven clock step, with a REST `reconcile` at the start and every `reconcile_seconds`:
  alpaca-py reconnects a dropped socket by itself and says nothing, and updates sent while it was
  down are lost, so a reconcile on a timer recovers them without knowing when the drop was.
- `run_live`: what `wolfkit intraday` runs — either runner until the stop time, riding out a 429 or
  an unknown outcome that escapes a step (a look-up that failed): wait, reconcile, go on; nothing is
  sent twice because every id a failed step may have sent is looked up first.
"""

from __future__ import annotations

import os
import threading
import time as _time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from wolfkit import calendar, market_hours
from wolfkit.broker.base import Broker, BrokerUnavailable, OrderUpdate, Quote, RateLimited
from wolfkit.broker.gate import BrokerKind
from wolfkit.calendar import NY
from wolfkit.config import Params
from wolfkit.domain import PlanStatus
from wolfkit.errors import BadInputError
from wolfkit.intraday.engine import IntradayEngine
from wolfkit.intraday.state import Market
from wolfkit.ledger import Ledger, load_engine_state
from wolfkit.orders import OrderPlan

if TYPE_CHECKING:
    from alpaca.trading.stream import TradingStream

    from wolfkit.broker.sim import SimBroker
    from wolfkit.data.base import DataProvider


class FeedMode(StrEnum):
    """Where a live run hears about its orders."""

    POLL = "poll"  # the broker's order list every step (REST)
    STREAM = "stream"  # alpaca-py's TradingStream, reconciled over REST on a timer


def feed_for(mode: str, broker: BrokerKind) -> tuple[FeedMode, tuple[str, str]]:
    """`--mode` as a `FeedMode`, with the Alpaca keys a stream needs (from the environment)."""
    from wolfkit.broker.alpaca import KEY_ENV, SECRET_ENV

    try:
        feed = FeedMode(mode)
    except ValueError:
        raise BadInputError(f"--mode {mode!r}: use poll or stream") from None
    keys = (os.environ.get(KEY_ENV, ""), os.environ.get(SECRET_ENV, ""))
    if feed is FeedMode.STREAM and (broker is BrokerKind.SIM or not all(keys)):
        raise BadInputError(f"--mode stream needs an Alpaca broker (--broker paper or live) and {KEY_ENV} / "
                            f"{SECRET_ENV} in the environment; use --mode poll otherwise")
    return feed, keys


def stop_time(session: date, until: str | None, now: datetime, *, source: str | Path) -> datetime:
    """When a live run on the plan of `session` (read from `source`) stops: `until` (HH:MM, New York)
    or the session's close. Bad input — a day without a session, an unreadable or past time — is
    refused before anything is sent. Whether the plan may run now at all is the session rule's
    (`wolfkit.market_hours.clear_to_send`), applied first."""
    if not calendar.is_trading_day(session):
        raise BadInputError(f"{source}: the plan's day {session} has no session for the engine to run; nothing was sent")
    if until is None:
        stop_at = calendar.session_close(session)
    else:
        try:
            stop_at = datetime.combine(session, dtime.fromisoformat(until), tzinfo=NY)
        except ValueError:
            raise BadInputError(f"--until {until!r}: expected HH:MM (New York time), e.g. 15:45") from None
    if now >= stop_at:
        raise BadInputError(f"--until {stop_at:%H:%M} ET has passed (now {now:%H:%M} ET); nothing was sent")
    return stop_at


def open_engine(params: Params, plan: OrderPlan, broker: Broker, ledger: Ledger,
                equity: float | None = None) -> tuple[IntradayEngine, bool]:
    """The plan's engine: resumed (and reconciled) when the ledger holds its saved state, else started
    fresh at the account's equity (`equity` when the caller has just read it, else read now). Returns it
    and whether it was resumed."""
    if load_engine_state(ledger, plan.run_id) is not None:
        return IntradayEngine.resume(params, broker, ledger, plan.run_id), True
    start_equity = broker.account().equity if equity is None else equity
    return IntradayEngine.start(params, plan, broker, equity=start_equity, ledger=ledger), False


def status_line(engine: IntradayEngine, step: int) -> str:
    """One line of progress: leverage per layer, maxdiff plans, fills and realized P&L."""
    e = engine.exposure()
    by = [pl.status for pl in engine.state.plans]
    return (f"{engine.state.now:%H:%M:%S} step {step}: leverage directional {e.directional_leverage:.2f}x "
            f"+ maxdiff {e.maxdiff_leverage:.2f}x (max {engine.params.leverage.total_max:g}x); maxdiff "
            f"{by.count(PlanStatus.LISTENING)} listening, {by.count(PlanStatus.QUEUED)} queued; "
            f"{len(engine.fills)} fills; realized ${sum(engine.state.realized.values()):+,.2f}")


def wall_clock() -> datetime:
    """Now in New York: the live engine's clock, the commands' one wall clock (`market_hours.wall_clock`)."""
    return market_hours.wall_clock()


def market_from_quotes(symbols: Sequence[str], quotes: dict[str, Quote]) -> Market:
    """A quote event as a `Market` aligned to `symbols` (high = low = close = the mid; NaN when absent)."""
    mid = np.array([quotes[s].mid if s in quotes else np.nan for s in symbols], dtype=float)
    return Market(mid, mid, mid)


class StreamSession:
    """Feeds trade updates from alpaca-py's `TradingStream` into an engine, and reconciles with the
    broker over REST at the start and then every `reconcile_seconds` of the engine's clock.

    alpaca-py's public API says nothing when its socket drops and reconnects, and the updates sent
    meanwhile are lost. The timer covers them without knowing when that happened: each reconcile
    re-reads every order of the engine by client id (`IntradayEngine.reconcile`), so a lost fill is
    booked at most `reconcile_seconds` late. The stream runs in its own thread (`run()` blocks);
    `lock` serialises it with the caller's clock-driven steps and reconciles.
    """

    def __init__(self, engine: IntradayEngine, reconcile_seconds: float, lock: threading.RLock | None = None):
        if not reconcile_seconds > 0:
            raise ValueError(f"reconcile_seconds must be > 0, got {reconcile_seconds}")
        self.engine = engine
        self.every = timedelta(seconds=reconcile_seconds)
        self.lock = lock or threading.RLock()
        self.last_reconcile: datetime | None = None
        self.reconciles = 0

    def on_update(self, update: OrderUpdate) -> None:
        """One trade update from the stream."""
        with self.lock:
            self.engine.on_update(update)

    def reconcile(self, now: datetime) -> None:
        """Re-read every order of the engine from the broker now."""
        with self.lock:
            self.engine.reconcile()
            self.last_reconcile = now
            self.reconciles += 1

    def reconcile_if_due(self, now: datetime) -> bool:
        """Reconcile when none has run yet or the last is `reconcile_seconds` old; True when it did."""
        if self.last_reconcile is not None and now - self.last_reconcile < self.every:
            return False
        self.reconcile(now)
        return True

    def stream(self, key: str, secret: str, *, paper: bool = True, url_override: str | None = None) -> TradingStream:
        """alpaca-py's `TradingStream` feeding this session (subscribed; call `.run()` in a thread)."""
        from wolfkit.broker.alpaca import trade_update_stream

        return trade_update_stream(key, secret, self.on_update, paper=paper, url_override=url_override)


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
    reconcile_seconds: float,
    paper: bool = True,
    url_override: str | None = None,
    max_steps: int | None = None,
    on_step: Callable[[int], None] | None = None,
) -> StreamSession:
    """Live mode: trade updates from alpaca-py's `TradingStream` (its own thread), a quote-driven clock
    step every `poll_seconds` until `until` (or after `max_steps`; `on_step` as in `run_polling`), and
    a REST reconcile once the stream is started and then every `reconcile_seconds` (`StreamSession`)."""
    session = StreamSession(engine, reconcile_seconds)
    stream = session.stream(key, secret, paper=paper, url_override=url_override)
    thread = threading.Thread(target=stream.run, name="wolfkit-trade-updates", daemon=True)
    thread.start()

    def stepped(n: int) -> None:
        session.reconcile_if_due(now())
        if on_step is not None:
            on_step(n)

    try:
        session.reconcile(now())  # whatever happened before the stream listened
        run_polling(engine, now=now, sleep=sleep, until=until, poll_seconds=poll_seconds, lock=session.lock,
                    poll_updates=False, max_steps=max_steps, on_step=stepped)
    finally:
        _stop(stream, thread)
    return session


def _stop(stream: TradingStream, thread: threading.Thread, wait: float = 5.0) -> None:
    """Stop the stream and its thread. `TradingStream.stop` needs the event loop that `run` creates in
    the thread, and raises before it exists (a step that failed at once): retry until it takes, so
    no stream is left connecting in the background when `run_live` starts the next one."""
    deadline = _time.monotonic() + wait
    while True:
        try:
            stream.stop()
            break
        except AttributeError:  # `run` has not created its loop yet
            if _time.monotonic() > deadline or not thread.is_alive():
                break
            _time.sleep(0.02)
    thread.join(timeout=10)


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
    mode: FeedMode,
    until: datetime,
    poll_seconds: float,
    reconcile_seconds: float = 30.0,
    clock: Callable[[], datetime] = wall_clock,
    sleep: Callable[[float], None] | None = None,
    keys: tuple[str, str] = ("", ""),
    paper: bool = True,
    max_steps: int | None = None,
    on_step: Callable[[int], None] | None = None,
    say: Callable[[str], None] = print,
) -> LiveRun:
    """Run the engine (`mode`: poll, or stream reconciling every `reconcile_seconds`) until `until` or
    `max_steps` steps, or Ctrl-C.

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
            left = None if max_steps is None else max_steps - done
            try:
                if stale:
                    engine.reconcile()  # looks up the ids a failed step may have sent: nothing is sent twice
                    stale = False
                if mode is FeedMode.STREAM:
                    run_streaming(engine, *keys, now=clock, sleep=pause, until=until, poll_seconds=poll_seconds,
                                  reconcile_seconds=reconcile_seconds, paper=paper, max_steps=left, on_step=counted)
                else:
                    run_polling(engine, now=clock, sleep=pause, until=until, poll_seconds=poll_seconds,
                                max_steps=left, on_step=counted)
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
