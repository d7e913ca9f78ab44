"""Shared test fixtures: the repo root, the real data folder (skip when absent), the parameter files, the
Alpaca-compatible emulator on 127.0.0.1 and the environment pointing alpaca-py at it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the repo; tests that need real data skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (a fresh clone without ../shared)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _session_rule_off_unless_marked(request, monkeypatch):
    """The session rule (`wolfkit.market_hours.clear_to_send`) refuses a plan outside its own session, so
    tests of other things, which execute today's plan at whatever hour and day the suite runs, would fail
    at night and on weekends. It is switched off for them here; the rule itself is tested with an
    injected clock in tests/test_market_hours.py, and tests marked `session_rule` run it for real."""
    if request.node.get_closest_marker("session_rule"):
        return
    import wolfkit.market_hours as market_hours

    monkeypatch.setattr(market_hours, "clear_to_send", lambda path, plan, now, override=None: None)


@pytest.fixture
def emulator_server():
    """Start the emulator over a given simulated account (`start(sim, faults=None, **create_app options)`);
    every server started is shut down after the test."""
    from wolfkit.broker.emulator import create_app, serve

    started = []

    def start(sim, faults=None, **kw):
        srv = serve(create_app(sim, faults, **kw))
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.shutdown()


@pytest.fixture
def env(monkeypatch):
    """`point(url)`: alpaca-py's keys and both base URLs set to the emulator at `url` (dummy keys)."""
    def point(url: str) -> None:
        monkeypatch.setenv("APCA_API_KEY_ID", "emulator-key")
        monkeypatch.setenv("APCA_API_SECRET_KEY", "emulator-secret")
        monkeypatch.setenv("APCA_API_BASE_URL", url)
        monkeypatch.setenv("APCA_API_DATA_URL", url)

    return point
