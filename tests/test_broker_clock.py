"""Both simulated venues honour their clock, as Alpaca does: one test body per rule, run against the
in-process `SimBroker` and against the HTTP emulator through alpaca-py (so the two cannot drift).

Outside regular hours a day market order is accepted and fills at the next open's prices; an OPG
order trades at the open; a limit trades pre-market or after-hours only with extended_hours; DAY
orders expire with their session; and the emulator's /v2/clock agrees with what fills.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from wolfkit.broker import matching
from wolfkit.broker.alpaca import AlpacaBroker
from wolfkit.broker.base import Broker, BrokerOrder, OrderRejected, OrderRequest, OrderStatus
from wolfkit.broker.sim import NY, SimBroker
from wolfkit.domain import OrderType, Side, TimeInForce

MON_PRE = datetime(2024, 6, 3, 8, 0, tzinfo=NY)  # Monday, pre-market
MON_OPEN = datetime(2024, 6, 3, 9, 30, tzinfo=NY)
MON_MID = datetime(2024, 6, 3, 11, 0, tzinfo=NY)
MON_CLOSE = datetime(2024, 6, 3, 16, 0, tzinfo=NY)
MON_AFTER = datetime(2024, 6, 3, 16, 10, tzinfo=NY)  # after-hours
MON_NIGHT = datetime(2024, 6, 3, 21, 0, tzinfo=NY)  # closed
TUE_OPEN = datetime(2024, 6, 4, 9, 31, tzinfo=NY)
SAT = datetime(2024, 6, 1, 12, 0, tzinfo=NY)


class Venue:
    """One account at a venue with a settable clock: the sim itself, or the emulator serving it."""

    def __init__(self, kind: str, server, env, **sim_kw):
        self.t = MON_PRE
        self.sim = SimBroker(100_000, 2.0, clock=lambda: self.t, **sim_kw)
        self.quote(100.0)
        if kind == "sim":
            self.broker: Broker = self.sim
        else:
            srv = server(self.sim)
            env(srv.url)
            self.broker = AlpacaBroker(timeout=5)

    def at(self, t: datetime, price: float | None = None) -> Venue:
        self.t = t
        if price is not None:
            self.quote(price)
        return self

    def quote(self, bid: float) -> None:
        self.sim.market.set("AAPL", bid, round(bid + 0.02, 2), self.t)

    def market_open(self) -> bool:
        if isinstance(self.broker, AlpacaBroker):
            return bool(self.broker.trading.get_clock().is_open)  # the emulator's /v2/clock
        return matching.regular_hours(self.sim.now())

    def fill_opportunity(self) -> int:
        """The market moves on (what a bar, or the emulator's demo feed, does)."""
        return self.sim.step()

    def submit(self, cid: str, type_: OrderType = OrderType.MARKET, tif: TimeInForce = TimeInForce.DAY,
               limit: float | None = None, **kw) -> BrokerOrder:
        return self.broker.submit(OrderRequest("AAPL", 10, Side.BUY, type_, tif, cid, limit, **kw))

    def order(self, cid: str) -> BrokerOrder:
        o = self.broker.get_by_client_id(cid)
        assert o is not None
        return o


@pytest.fixture(params=["sim", "emulator"])
def venue(request, emulator_server, env):
    def make(**sim_kw) -> Venue:
        return Venue(request.param, emulator_server, env, **sim_kw)

    return make


def test_day_market_order_after_the_close_waits_for_the_next_open_and_fills_at_its_price(venue):
    v = venue(fill_on_submit=True).at(MON_AFTER, 100.0)
    assert not v.market_open()
    o = v.submit("after-close")
    assert o.status == OrderStatus.ACCEPTED and o.filled_qty == 0  # accepted, queued: not filled
    assert v.fill_opportunity() == 0 and v.broker.positions() == []
    v.at(MON_NIGHT, 101.0)
    assert v.fill_opportunity() == 0  # still closed
    v.at(TUE_OPEN, 104.0)
    assert v.market_open()
    assert v.fill_opportunity() == 1
    got = v.order("after-close")
    assert got.status == OrderStatus.FILLED and got.filled_avg_price == pytest.approx(104.02)  # the open's ask


def test_weekend_day_order_waits_for_monday(venue):
    v = venue().at(SAT, 100.0)
    assert not v.market_open()
    assert v.submit("weekend").status == OrderStatus.ACCEPTED
    assert v.fill_opportunity() == 0
    v.at(datetime(2024, 6, 3, 9, 45, tzinfo=NY), 99.0)
    assert v.fill_opportunity() == 1 and v.order("weekend").filled_avg_price == pytest.approx(99.02)


def test_opg_order_trades_at_the_open_auction(venue):
    v = venue().at(MON_PRE, 100.0)
    assert v.submit("opg", tif=TimeInForce.OPG).status == OrderStatus.ACCEPTED
    assert v.fill_opportunity() == 0  # pre-market: the auction has not happened
    v.at(MON_OPEN, 102.0)
    assert v.fill_opportunity() == 1
    assert v.order("opg").filled_avg_price == pytest.approx(102.02)
    v.at(datetime(2024, 6, 3, 10, 0, tzinfo=NY))
    with pytest.raises(OrderRejected, match="opg"):  # inside 09:28–19:00 OPG is refused
        v.submit("opg-late", tif=TimeInForce.OPG)


def test_limit_outside_regular_hours_trades_only_with_extended_hours(venue):
    v = venue().at(MON_PRE, 100.0)
    plain = v.submit("plain", OrderType.LIMIT, limit=101.0)  # marketable, but the session is not open
    ext = v.submit("ext", OrderType.LIMIT, limit=101.0, extended_hours=True)
    assert plain.status == OrderStatus.ACCEPTED and ext.status == OrderStatus.NEW
    assert v.fill_opportunity() == 1
    assert v.order("ext").status == OrderStatus.FILLED and v.order("plain").status == OrderStatus.ACCEPTED
    v.at(MON_OPEN)
    assert v.fill_opportunity() == 1 and v.order("plain").status == OrderStatus.FILLED


@pytest.mark.parametrize("bad", [dict(type_=OrderType.MARKET), dict(type_=OrderType.LIMIT, tif=TimeInForce.GTC)])
def test_extended_hours_needs_a_day_limit(venue, bad):
    v = venue().at(MON_AFTER)
    kw = {"limit": 100.0} if bad["type_"] == OrderType.LIMIT else {}
    with pytest.raises(OrderRejected, match="extended hours"):
        v.submit("bad-ext", extended_hours=True, **bad, **kw)


def test_after_hours_extended_limit_fills_until_eight(venue):
    v = venue().at(MON_AFTER, 100.0)
    v.submit("ah", OrderType.LIMIT, limit=99.0, extended_hours=True)  # not marketable yet
    assert v.fill_opportunity() == 0
    v.at(datetime(2024, 6, 3, 19, 0, tzinfo=NY), 98.0)
    assert v.fill_opportunity() == 1 and v.order("ah").filled_avg_price == pytest.approx(98.02)


def test_day_orders_expire_when_their_session_ends(venue):
    v = venue().at(MON_MID, 100.0)
    v.submit("resting", OrderType.LIMIT, limit=90.0)  # never marketable
    gtc = v.submit("gtc", OrderType.LIMIT, tif=TimeInForce.GTC, limit=90.0)
    assert v.fill_opportunity() == 0 and v.order("resting").status == OrderStatus.NEW
    v.at(MON_CLOSE)
    v.fill_opportunity()
    assert v.order("resting").status == OrderStatus.EXPIRED
    assert v.order("gtc").status == gtc.status == OrderStatus.NEW  # GTC works on; it trades again at the open
    v.at(TUE_OPEN, 89.0)
    assert v.fill_opportunity() == 1 and v.order("gtc").status == OrderStatus.FILLED


def test_an_order_sent_after_the_close_survives_the_days_end_of_day(venue):
    v = venue().at(MON_AFTER, 100.0)
    v.submit("tomorrow")
    assert v.sim.end_of_day() == 0  # it belongs to Tuesday's session
    assert v.order("tomorrow").status == OrderStatus.ACCEPTED


@pytest.mark.parametrize("t", [
    SAT, MON_PRE, MON_OPEN, MON_MID, datetime(2024, 6, 3, 15, 59, tzinfo=NY), MON_CLOSE, MON_NIGHT,
    datetime(2024, 7, 4, 11, 0, tzinfo=NY),  # Independence Day
    datetime(2024, 11, 29, 12, 30, tzinfo=NY), datetime(2024, 11, 29, 13, 30, tzinfo=NY),  # early close 13:00
])
def test_the_clock_says_open_exactly_when_a_market_order_fills(venue, t):
    v = venue().at(t, 100.0)
    is_open = v.market_open()
    assert is_open == (t.weekday() < 5 and t.date().isoformat() != "2024-07-04"
                       and MON_OPEN.time() <= t.time() < (MON_CLOSE.time() if t.day != 29 else datetime(
                           2024, 11, 29, 13, 0).time()))
    v.submit("probe")
    assert v.fill_opportunity() == int(is_open)
    assert v.order("probe").status == (OrderStatus.FILLED if is_open else OrderStatus.ACCEPTED)
