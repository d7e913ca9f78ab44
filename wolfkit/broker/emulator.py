"""An Alpaca-compatible HTTP server on 127.0.0.1, backed by the simulated broker.

It speaks Alpaca's trading API (and the market-data endpoints wolfkit's alpaca data provider calls)
in Alpaca's JSON shapes, status codes and error bodies, so alpaca-py's unmodified clients — and so
`AlpacaBroker` — run offline against a `SimBroker`. Point them at it with
`APCA_API_BASE_URL=http://127.0.0.1:PORT` and `APCA_API_DATA_URL=http://127.0.0.1:PORT`.

Why it exists: the executor's hard cases are transport failures that the in-process broker cannot
produce — a 504 *after* the order was accepted, a connection dropped without a response, bursts of
429s — and alpaca-py's own behaviour (retries, parsing, timeouts). `Faults` switches those on,
seeded, per request; `/_faults` changes them at run time and `/_stats` counts what happened.

Rate limit: every `/v2` request counts against `rate_limit_per_minute` (Alpaca: 200) in a sliding
minute; over it, 429 with `X-Ratelimit-Reset` (epoch seconds). Give the `SimBroker` no limit of its
own, or both apply.

The pieces: `alpaca_wire` (JSON shapes, parsing, error bodies), `emulator_state` (faults, limiter,
counters), `emulator_app` (the routes), and here the server, the demo market feed and `run_demo`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from wolfkit import calendar
from wolfkit.broker.alpaca_wire import order_json, parse_order
from wolfkit.broker.emulator_app import create_app, emulator_of
from wolfkit.broker.emulator_state import Emulator, Faults
from wolfkit.broker.sim import SimBroker
from wolfkit.data.base import DataProvider

__all__ = ["DemoFeed", "Emulator", "EmulatorServer", "Faults", "create_app", "emulator_of", "order_json",
           "parse_order", "run_demo", "serve"]


class _QuietHandler(WSGIRequestHandler):
    """No access log, and a dropped connection is expected here, not an error."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def connection_dropped(self, error: BaseException, environ: dict | None = None) -> None:
        pass


class EmulatorServer:
    """A running emulator: `url`, `port`; `start()` in a thread (tests) or `serve_forever()`."""

    def __init__(self, app: Flask, port: int = 0, host: str = "127.0.0.1", quiet: bool = True):
        self.app = app
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=_QuietHandler if quiet else WSGIRequestHandler
        )
        self.host, self.port = host, self._server.server_port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def emulator(self) -> Emulator:
        return emulator_of(self.app)

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="wolfkit-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> EmulatorServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def serve(app: Flask, port: int = 0, host: str = "127.0.0.1", *, quiet: bool = True) -> EmulatorServer:
    """Serve `app` (from `create_app`) in a background thread; port 0 picks a free one.
    Returns at once; `shutdown()` stops it."""
    return EmulatorServer(app, port, host, quiet=quiet).start()


class DemoFeed:
    """Keeps a `SimBroker`'s quotes current from a provider (the demo market) and lets open
    orders fill: every `interval_s`, latest quotes for the universe at wall-clock time, then a
    fill step. Runs in a daemon thread; a failed refresh is counted, not fatal."""

    def __init__(self, broker: SimBroker, provider: DataProvider, interval_s: float = 5.0,
                 clock: Callable[[], datetime] = calendar.now_ny):
        self.broker, self.provider, self.interval_s, self.clock = broker, provider, interval_s, clock
        self.symbols = list(provider.universe()["symbol"])
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        now = self.clock()
        # a provider may build its price history lazily; ask for recent bars first
        self.provider.daily_bars(self.symbols[:1], now.date() - timedelta(days=10), now.date())
        q = self.provider.latest_quotes(self.symbols, now)
        self.broker.market.update(list(q["symbol"]), q["bid"].to_numpy(), q["ask"].to_numpy(), now)
        self.broker.step()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.refresh()
            except Exception:
                self.errors += 1

    def start(self) -> DemoFeed:
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="wolfkit-demo-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()


def run_demo(port: int, *, provider: DataProvider, equity: float = 100_000.0, multiplier: float = 2.0,
             state_path: str | Path | None = None, host: str = "127.0.0.1",
             on_ready: Callable[[EmulatorServer], None] | None = None) -> None:
    """`wolfkit emulator`: a paper account on the demo market, served until interrupted.

    With `state_path`, the account is loaded from it when it exists and saved after every change,
    so a restart keeps every order (client ids stay unique across restarts, as at Alpaca).
    """
    clock = calendar.now_ny  # the wall clock, or WOLFKIT_NOW when a schedule is rehearsed
    if state_path is not None and Path(state_path).exists():
        broker = SimBroker.load(state_path, clock=clock)
    else:
        broker = SimBroker(equity, multiplier, clock=clock)
    feed = DemoFeed(broker, provider, clock=clock).start()
    app = create_app(broker, data=provider, state_path=state_path)
    server = EmulatorServer(app, port, host, quiet=False)
    if on_ready is not None:
        on_ready(server)
    try:
        server.serve_forever()
    finally:
        feed.stop()
        server._server.server_close()


logging.getLogger("werkzeug").setLevel(logging.WARNING)
