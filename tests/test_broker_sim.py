"""The simulated broker: Alpaca's reservation rule, its rejections, fills, replace, bars, state."""

from __future__ import annotations

import json
import time
from datetime import datetime

import numpy as np
import pytest
from factories import FakeClock, quoted_sim

from wolfkit.broker.base import (
    Broker,
    DuplicateClientOrderId,
    InsufficientBuyingPower,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    RateLimited,
    UpdateEvent,
    WashTradeRejected,
)
from wolfkit.broker.sim import NY, QuoteBook, SimBroker
from wolfkit.domain import OrderType, Side, TimeInForce

OPEN = datetime(2026, 1, 20, 9, 31, tzinfo=NY)
PREMARKET = datetime(2026, 1, 20, 8, 45, tzinfo=NY)


def req(symbol="AAPL", qty=10, side=Side.BUY, type_=OrderType.MARKET, cid="c1", limit=None,
        tif=TimeInForce.DAY, **kw) -> OrderRequest:
    return OrderRequest(symbol, qty, side, type_, tif, cid, limit, **kw)


def broker(equity=100_000.0, now=OPEN, **kw) -> SimBroker:
    """These tests' account: three names with one-to-four-cent spreads, one under a dollar."""
    return quoted_sim({"AAPL": 100.0, "MSFT": 400.0, "PENNY": 0.5002},
                      bids={"AAPL": 99.98, "MSFT": 399.9, "PENNY": 0.5}, equity=equity, now=now, **kw)


def test_implements_the_broker_protocol():
    assert isinstance(broker(), Broker)


def test_open_buys_reserve_buying_power_until_filled_or_cancelled():
    b = broker(market_buffer=0.03)
    assert b.account().buying_power == 100_000
    b.submit(req(qty=100, cid="m"))  # market: ask 100 × 1.03
    assert b.account().buying_power == pytest.approx(100_000 - 100 * 100 * 1.03)
    lim = b.submit(req("MSFT", 10, type_=OrderType.LIMIT, limit=390.0, cid="l"))  # limit: at the limit
    assert b.account().buying_power == pytest.approx(100_000 - 10_300 - 3_900)
    b.cancel(lim.id)
    assert b.account().buying_power == pytest.approx(100_000 - 10_300)
    b.step()  # the market order fills at the ask; its reservation becomes a position
    a = b.account()
    assert a.cash == pytest.approx(90_000) and a.buying_power == pytest.approx(90_000)
    assert b.positions()[0].qty == 100


def test_market_buy_outside_the_session_is_priced_at_the_mid():
    b = broker(now=PREMARKET, market_buffer=0.0)
    b.submit(req(qty=100))
    assert b.account().buying_power == pytest.approx(100_000 - 100 * 99.99)


def test_margin_multiplier_formula():
    b = broker(multiplier=2.0, fill_on_submit=True)
    assert b.account().buying_power == 200_000
    b.submit(req("MSFT", 375, cid="a"))  # 150k at 400
    a = b.account()
    # 2 × equity − gross position value − reservations
    assert a.buying_power == pytest.approx(2 * a.equity - a.long_market_value)
    assert a.cash == pytest.approx(-50_000)


def test_over_budget_raises_with_the_buying_power_the_body_reports():
    b = broker()
    b.submit(req("MSFT", 200, cid="a"))  # reserves 80k
    with pytest.raises(InsufficientBuyingPower) as e:
        b.submit(req("MSFT", 60, cid="b"))
    assert str(e.value) == "insufficient buying power"
    assert e.value.buying_power == pytest.approx(20_000) and e.value.cost_basis == pytest.approx(24_000)
    assert b.get_by_client_id("b") is None  # a refused order does not exist


def test_client_ids_are_unique_forever_even_after_cancel():
    b = broker()
    o = b.submit(req(cid="x"))
    b.cancel(o.id)
    with pytest.raises(DuplicateClientOrderId, match="client_order_id must be unique"):
        b.submit(req(cid="x"))
    assert b.get_by_client_id("x").status == OrderStatus.CANCELED


@pytest.mark.parametrize("price,ok", [(100.0, True), (100.01, True), (100.005, False), (0.5001, True),
                                      (0.50005, False)])
def test_limit_price_must_be_on_the_tick(price, ok):
    b = broker()
    sym = "PENNY" if price < 1 else "AAPL"
    r = req(sym, 10, type_=OrderType.LIMIT, limit=price)
    if ok:
        assert b.submit(r).limit_price == price
    else:
        with pytest.raises(OrderRejected) as e:
            b.submit(r)
        assert e.value.status_code == 422


@pytest.mark.parametrize("hh,mm,ok", [(8, 0, True), (9, 27, True), (9, 28, False), (12, 0, False),
                                      (18, 59, False), (19, 0, True), (23, 0, True)])
def test_opg_window(hh, mm, ok):
    b = broker(now=datetime(2026, 1, 20, hh, mm, tzinfo=NY))
    r = req(tif=TimeInForce.OPG)
    if ok:
        assert b.submit(r).time_in_force == TimeInForce.OPG
    else:
        with pytest.raises(OrderRejected, match="opg"):
            b.submit(r)


def test_opposite_side_while_open_is_a_wash_trade():
    b = broker()
    b.submit(req(type_=OrderType.LIMIT, limit=95.0, cid="buy"))
    with pytest.raises(WashTradeRejected):
        b.submit(req(side=Side.SELL, type_=OrderType.LIMIT, limit=105.0, cid="sell"))
    b.submit(req("MSFT", 1, side=Side.SELL, type_=OrderType.LIMIT, limit=405.0, cid="other"))  # other symbol


def test_rate_limit_sliding_window_reports_retry_after():
    clock = FakeClock()
    b = broker(rate_limit_per_minute=3, timer=clock.monotonic)
    b.account()
    b.account()
    clock.t = 10.0
    b.account()
    with pytest.raises(RateLimited) as e:
        b.account()
    assert e.value.retry_after == pytest.approx(50.0)
    clock.t = 60.0  # the first two calls left the window
    b.account()


def test_replace_gives_new_id_and_reserves_the_larger():
    b = broker()
    o = b.submit(req(qty=100, type_=OrderType.LIMIT, limit=100.0, cid="o"))
    n = b.replace(o.id, qty=50, client_order_id="o2")
    assert n.id != o.id and n.replaces == o.id
    assert b.get(o.id).status == OrderStatus.REPLACED and b.get(o.id).replaced_by == n.id
    assert b.account().buying_power == pytest.approx(90_000)  # max(10k old, 5k new)
    up = b.replace(n.id, limit_price=120.0, client_order_id="o3")  # 50 × 120 = 6k < 10k held
    assert b.account().buying_power == pytest.approx(90_000)
    b.replace(up.id, qty=200, client_order_id="o4")  # 200 × 120 = 24k > 10k: grows
    assert b.account().buying_power == pytest.approx(76_000)
    with pytest.raises(InsufficientBuyingPower):
        b.replace(b.get_by_client_id("o4").id, qty=1000, client_order_id="o5")


def test_fills_update_cash_positions_and_updates_stream_with_slippage():
    b = broker(slippage_bps=10)
    b.submit(req(qty=10, cid="b"))
    assert [u.event for u in b.updates()] == [UpdateEvent.NEW]
    b.step()
    ups = b.updates()
    assert [u.event for u in ups] == [UpdateEvent.FILL]
    assert ups[0].fill.price == pytest.approx(100.0 * 1.001)
    assert b.updates() == []
    assert b.account().cash == pytest.approx(100_000 - 10 * 100.1)
    b.submit(req(qty=10, side=Side.SELL, cid="s"))
    b.step()
    assert b.positions() == []
    assert len(b.fills()) == 2 and b.fills()[1].price == pytest.approx(99.98 * 0.999)


def test_partial_fills_are_seeded_and_complete_eventually():
    def run(seed):
        b = broker(partial_fill_prob=0.7, seed=seed)
        b.submit(req(qty=100))
        sizes = []
        while b.open_orders():
            b.step()
            sizes = [f.qty for f in b.fills()]
        return sizes

    a = run(3)
    assert a == run(3) and sum(a) == 100 and len(a) > 1


def test_limit_fills_when_a_bar_touches_and_only_symbols_with_open_orders_are_examined():
    b = broker()
    o = b.submit(req(qty=10, type_=OrderType.LIMIT, limit=98.0, cid="l"))
    syms = ["AAPL", "MSFT", "X"]
    ts = datetime(2026, 1, 20, 9, 32, tzinfo=NY)
    assert b.on_bar(syms, [100.5, 401, 10], [98.5, 399, 9], [100.0, 400, 9.5], ts) == 0
    assert b.on_bar(syms, [99.5, 401, 10], [97.9, 399, 9], [99.0, 400, 9.5], ts) == 1
    f = b.get(o.id)
    assert f.status == OrderStatus.FILLED and f.filled_avg_price == 98.0
    assert b.quotes(["X"])["X"].mid == pytest.approx(9.5)


def test_bracket_legs_activate_on_fill_and_cancel_each_other():
    b = broker(fill_on_submit=True)
    o = b.submit(req(qty=10, take_profit=110.0, stop_loss=95.0, cid="br"))
    assert o.status == OrderStatus.FILLED
    legs = {leg.limit_price or leg.stop_price: leg for leg in b.get(o.id).legs}
    assert all(leg.status == OrderStatus.NEW for leg in legs.values())
    assert len(b.open_orders()) == 2  # the working exit orders
    b.on_bar(["AAPL"], [111.0], [100.0], [109.0], OPEN)
    p = b.get(o.id)
    st = {leg.client_order_id[-2:]: leg.status for leg in p.legs}
    assert st == {"tp": OrderStatus.FILLED, "sl": OrderStatus.CANCELED}
    assert b.positions() == [] and b.fills()[-1].price == 110.0


def test_unknown_symbol_and_bad_qty_are_refused():
    b = broker()
    with pytest.raises(OrderRejected, match="asset \"NOPE\" not found"):
        b.submit(req("NOPE"))
    with pytest.raises(OrderRejected, match="qty"):
        b.submit(req(qty=0))


def test_snapshot_restore_round_trip_through_json(tmp_path):
    b = broker(partial_fill_prob=0.5, seed=5, fill_on_submit=True)
    b.submit(req(qty=50, cid="a"))
    b.submit(req("MSFT", 5, type_=OrderType.LIMIT, limit=390.0, cid="b", take_profit=420.0))
    path = tmp_path / "sim.json"
    b.persist(path)
    b.submit(req("AAPL", 1, cid="c"))  # persisted automatically
    r = SimBroker.load(path, clock=lambda: OPEN)
    assert json.loads(path.read_text())["schema"] == "wolfkit.simbroker/1"
    assert r.account() == b.account()
    assert [o.client_order_id for o in r.orders()] == ["a", "b", "c"]
    assert r.orders() == b.orders() and r.fills() == b.fills()
    with pytest.raises(DuplicateClientOrderId):
        r.submit(req(cid="b-tp"))  # legs' ids are taken too
    b.step()  # same RNG state: same partial fills
    r.step()
    assert r.fills() == b.fills()


def test_replay_scale_bars_are_fast():
    """390 minutes × 500 symbols with a handful of open orders (a smoke bound, not a benchmark)."""
    rng = np.random.default_rng(0)
    syms = [f"S{i}" for i in range(500)]
    close = 50 + rng.random(500) * 100
    b = SimBroker(1_000_000, market=QuoteBook(spread_bps=2))
    b.market.update_from_bars(syms, close, OPEN)
    for k in range(20):
        b.submit(req(syms[k], 10, type_=OrderType.LIMIT, limit=round(close[k] * 0.99, 2), cid=f"o{k}"))
    t0 = time.perf_counter()
    for m in range(390):
        close = close * (1 + rng.normal(0, 0.001, 500))
        b.on_bar(syms, close * 1.002, close * 0.998, close, OPEN)
    assert time.perf_counter() - t0 < 2.0


def test_submission_times_are_unique_ordered_and_survive_a_restart():
    """Orders sent in one clock instant get distinct, increasing times (lists page by time, as at
    Alpaca); a restored broker goes on after the last one."""
    b = broker()
    stamps = [b.submit(req(cid=f"u{i}", type_=OrderType.LIMIT, limit=90.0)).submitted_at for i in range(3)]
    assert stamps[0] == OPEN and stamps == sorted(set(stamps))
    again = SimBroker.restore(json.loads(json.dumps(b.snapshot())), clock=lambda: OPEN)
    assert again.submit(req(cid="u3", type_=OrderType.LIMIT, limit=90.0)).submitted_at > stamps[-1]
