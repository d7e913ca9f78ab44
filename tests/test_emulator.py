"""The Alpaca-compatible emulator, driven by alpaca-py's unmodified clients on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus
from alpaca.trading.enums import TimeInForce as AlpacaTIF
from alpaca.trading.requests import (
    GetCalendarRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)
from factories import OPEN, FakeClock, gapped_asks, make_plan, quoted_sim

from wolfkit.broker.alpaca import AlpacaBroker
from wolfkit.broker.base import (
    BrokerUnavailable,
    DuplicateClientOrderId,
    InsufficientBuyingPower,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    RateLimited,
    WashTradeRejected,
)
from wolfkit.broker.emulator import Faults, emulator_of
from wolfkit.broker.sim import SimBroker
from wolfkit.calendar import NY
from wolfkit.domain import OrderType, Side, TimeInForce

OPEN_935 = datetime(2024, 6, 3, 9, 35, tzinfo=NY)  # a Monday session


def make_sim(equity: float = 100_000, multiplier: float = 1.0, now: datetime = OPEN_935, **kw) -> SimBroker:
    """The emulator tests' account: three names, one of them under a dollar, asks 0.05% over the bid."""
    bids = {"AAPL": 190.0, "MSFT": 410.0, "PENNY": 0.5123}
    return quoted_sim({s: round(px * 1.0005, 4) for s, px in bids.items()}, bids=bids, equity=equity,
                      multiplier=multiplier, now=now, **kw)


@pytest.fixture
def server(emulator_server):
    """The emulator over `sim` (default: `make_sim()`), with `faults` and other `create_app` options."""
    return lambda sim=None, faults=None, **kw: emulator_server(sim or make_sim(), faults, **kw)


def client(url: str) -> TradingClient:
    return TradingClient("emulator-key", "emulator-secret", paper=True, url_override=url)


def test_account_positions_clock_calendar_through_alpaca_py(server):
    srv = server(make_sim(100_000, 2.0, fill_on_submit=True))
    tc = client(srv.url)
    acct = tc.get_account()
    assert (float(acct.equity), float(acct.buying_power), float(acct.multiplier)) == (100_000, 200_000, 2)
    tc.submit_order(MarketOrderRequest(symbol="AAPL", qty=10, side=OrderSide.BUY, time_in_force=AlpacaTIF.DAY))
    (pos,) = tc.get_all_positions()
    assert pos.symbol == "AAPL" and float(pos.qty) == 10 and float(pos.avg_entry_price) == pytest.approx(190.095)
    clock = tc.get_clock()
    assert clock.is_open and clock.timestamp == OPEN_935
    assert clock.next_close == datetime(2024, 6, 3, 16, 0, tzinfo=NY)
    assert clock.next_open == datetime(2024, 6, 4, 9, 30, tzinfo=NY)
    days = tc.get_calendar(GetCalendarRequest(start=date(2024, 11, 27), end=date(2024, 12, 2)))
    assert [d.date for d in days] == [date(2024, 11, 27), date(2024, 11, 29), date(2024, 12, 2)]  # Thanksgiving
    assert days[1].close == datetime(2024, 11, 29, 13, 0)  # early close


def test_clock_before_the_open_and_on_a_weekend(server):
    tc = client(server(make_sim(now=datetime(2024, 6, 1, 12, 0, tzinfo=NY))).url)  # Saturday
    c = tc.get_clock()
    assert not c.is_open and c.next_open == datetime(2024, 6, 3, 9, 30, tzinfo=NY)
    tc = client(server(make_sim(now=datetime(2024, 6, 3, 8, 0, tzinfo=NY))).url)
    c = tc.get_clock()
    assert not c.is_open and c.next_open == datetime(2024, 6, 3, 9, 30, tzinfo=NY)
    assert c.next_close == datetime(2024, 6, 3, 16, 0, tzinfo=NY)


def test_submit_get_replace_cancel_by_client_id(server):
    tc = client(server().url)
    o = tc.submit_order(LimitOrderRequest(symbol="MSFT", qty=5, side=OrderSide.BUY, time_in_force=AlpacaTIF.DAY,
                                          limit_price=400.0, client_order_id="wk-msft"))
    assert o.client_order_id == "wk-msft" and o.status.value == "new" and float(o.limit_price) == 400
    assert tc.get_order_by_id(o.id).id == o.id
    assert tc.get_order_by_client_id("wk-msft").id == o.id
    new = tc.replace_order_by_id(o.id, ReplaceOrderRequest(qty=8, limit_price=401.0, client_order_id="wk-msft-2"))
    assert new.id != o.id and str(new.replaces) == str(o.id) and float(new.qty) == 8
    assert tc.get_order_by_id(o.id).status.value == "replaced"
    tc.cancel_order_by_id(new.id)
    assert tc.get_order_by_id(new.id).status.value == "canceled"
    with pytest.raises(APIError) as e:
        tc.cancel_order_by_id(new.id)
    assert e.value.status_code == 422
    with pytest.raises(APIError) as e:
        tc.get_order_by_client_id("never-sent")
    assert e.value.status_code == 404 and e.value.code == 40410000


def test_order_listing_filters(server):
    tc = client(server().url)
    for sym, cid in (("AAPL", "a"), ("MSFT", "m")):
        tc.submit_order(LimitOrderRequest(symbol=sym, qty=1, side=OrderSide.BUY, time_in_force=AlpacaTIF.DAY,
                                          limit_price=100.0, client_order_id=cid))
    tc.cancel_order_by_id(tc.get_order_by_client_id("a").id)
    open_ = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    closed = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    both = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["MSFT"]))
    assert [o.client_order_id for o in open_] == ["m"] and [o.client_order_id for o in closed] == ["a"]
    assert [o.client_order_id for o in both] == ["m"]
    later = OPEN_935 + timedelta(seconds=1)
    assert tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, after=later)) == []
    assert len(tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, until=later, limit=1))) == 1
    cancelled = tc.cancel_orders()
    assert [str(c.id) for c in cancelled] == [str(tc.get_order_by_client_id("m").id)]
    assert tc.get_orders() == []


def test_bracket_legs_nested_and_flat(server):
    tc = client(server().url)
    o = tc.submit_order(LimitOrderRequest(
        symbol="AAPL", qty=3, side=OrderSide.BUY, time_in_force=AlpacaTIF.DAY, limit_price=180.0,
        order_class="bracket", take_profit=TakeProfitRequest(limit_price=200.0),
        stop_loss=StopLossRequest(stop_price=170.0)))
    assert o.order_class.value == "bracket"
    assert sorted((leg.type.value, leg.status.value) for leg in o.legs) == [("limit", "held"), ("stop", "held")]
    flat = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=False))
    assert len(flat) == 3 and all(x.legs is None for x in flat)


def test_alpaca_error_bodies(server):
    tc = client(server(make_sim(10_000)).url)
    with pytest.raises(APIError) as e:
        tc.submit_order(MarketOrderRequest(symbol="MSFT", qty=100, side=OrderSide.BUY, time_in_force=AlpacaTIF.DAY))
    body = json.loads(str(e.value))
    assert e.value.status_code == 403 and e.value.code == 40310000 and e.value.message == "insufficient buying power"
    assert float(body["buying_power"]) == 10_000 and float(body["cost_basis"]) > 10_000
    with pytest.raises(APIError) as e:
        tc.submit_order(LimitOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=AlpacaTIF.DAY,
                                          limit_price=190.123))
    assert e.value.status_code == 422 and "sub-penny" in e.value.message
    tc.submit_order(MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=AlpacaTIF.DAY,
                                       client_order_id="once"))
    with pytest.raises(APIError) as e:
        tc.submit_order(MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=AlpacaTIF.DAY,
                                           client_order_id="once"))
    assert e.value.status_code == 422 and e.value.message == "client_order_id must be unique"


def test_unauthenticated_request_is_401(server):
    srv = server()
    r = requests.get(f"{srv.url}/v2/account", timeout=5)
    assert r.status_code == 401 and r.json()["code"] == 40110000


def test_adapter_maps_emulator_errors(server, env):
    srv = server(make_sim(10_000, now=datetime(2024, 6, 3, 10, 0, tzinfo=NY)))
    env(srv.url)
    b = AlpacaBroker(timeout=5)
    req = dict(side=Side.BUY, type=OrderType.MARKET, time_in_force=TimeInForce.DAY)
    with pytest.raises(InsufficientBuyingPower) as e:
        b.submit(OrderRequest("MSFT", 100, client_order_id="big", **req))
    assert e.value.buying_power == 10_000
    b.submit(OrderRequest("AAPL", 1, client_order_id="x", **{**req, "type": OrderType.LIMIT}, limit_price=150.0))
    with pytest.raises(DuplicateClientOrderId):
        b.submit(OrderRequest("AAPL", 1, client_order_id="x", **req))
    with pytest.raises(WashTradeRejected):
        b.submit(OrderRequest("AAPL", 1, client_order_id="y", **{**req, "side": Side.SELL}))
    with pytest.raises(OrderRejected, match="opg"):
        b.submit(OrderRequest("MSFT", 1, client_order_id="z", **{**req, "time_in_force": TimeInForce.OPG}))
    with pytest.raises(OrderRejected, match="sub-penny"):
        b.submit(OrderRequest("PENNY", 1, client_order_id="p", **{**req, "type": OrderType.LIMIT},
                              limit_price=0.51234))
    assert b.submit(OrderRequest("PENNY", 1, client_order_id="p2", **{**req, "type": OrderType.LIMIT},
                                 limit_price=0.5123)).limit_price == 0.5123


def test_adapter_round_trip_and_updates(server, env):
    sim = make_sim(50_000, partial_fill_prob=0.0)
    srv = server(sim)
    env(srv.url)
    b = AlpacaBroker(timeout=5)
    o = b.submit(OrderRequest("AAPL", 10, Side.BUY, OrderType.MARKET, TimeInForce.DAY, "rt-1",
                              take_profit=210.0, stop_loss=180.0))
    assert [u.event.value for u in b.updates()] == ["new"]
    assert [x.id for x in b.open_orders()] == [o.id] and b.get_by_client_id("rt-1").id == o.id
    sim.step()  # the simulated market fills the market order
    ups = b.updates()
    assert [u.event.value for u in ups] == ["fill"] and ups[0].fill.qty == 10
    assert ups[0].fill.price == pytest.approx(190.095)
    assert [(p.symbol, p.qty) for p in b.positions()] == [("AAPL", 10)]
    legs = b.open_orders()  # the bracket's exits are now working
    assert sorted((x.type, x.stop_price, x.limit_price) for x in legs) == [
        (OrderType.LIMIT, None, 210.0), (OrderType.MARKET, 180.0, None)]
    assert b.get_by_client_id("missing") is None


def test_latest_quotes_and_bars_through_the_data_client(server):
    class Bars:  # the smallest DataProvider the bars endpoint needs
        def daily_bars(self, symbols, start, end):
            days = pd.to_datetime(["2024-05-30", "2024-05-31", "2024-06-03"])
            rows = [(s, d, 10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, 1000.0) for s in symbols for i, d in enumerate(days)]
            f = pd.DataFrame(rows, columns=["symbol", "date", "open", "high", "low", "close", "volume"])
            return f[(f["date"] >= pd.Timestamp(start)) & (f["date"] <= pd.Timestamp(end))]

    srv = server(data=Bars())
    dc = StockHistoricalDataClient("k", "s", url_override=srv.url)
    q = dc.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols=["AAPL", "MSFT"]))
    assert q["AAPL"].bid_price == 190.0 and q["MSFT"].ask_price == pytest.approx(410.205)
    bars = dc.get_stock_bars(StockBarsRequest(symbol_or_symbols=["AAPL", "MSFT"], timeframe=TimeFrame.Day,
                                              start=datetime(2024, 5, 31), end=datetime(2024, 6, 4), limit=3))
    assert [b.close for b in bars.data["AAPL"]] == [11.5, 12.5] and len(bars.data["MSFT"]) == 1  # limit=3
    bars = dc.get_stock_bars(StockBarsRequest(symbol_or_symbols=["AAPL", "MSFT"], timeframe=TimeFrame.Day,
                                              start=datetime(2024, 5, 31), end=datetime(2024, 6, 4)))
    assert len(bars.data["MSFT"]) == 2  # alpaca-py follows next_page_token
    assert bars.data["AAPL"][0].timestamp == datetime(2024, 5, 31, 4, 0, tzinfo=timezone.utc)


# ---- faults -----------------------------------------------------------------------------------


def _adapter(server, env, faults: Faults, **kw) -> tuple[AlpacaBroker, SimBroker, object]:
    sim = make_sim(1_000_000)
    srv = server(sim, faults, **kw)
    env(srv.url)
    return AlpacaBroker(timeout=5), sim, srv


def _req(cid: str) -> OrderRequest:
    return OrderRequest("AAPL", 1, Side.BUY, OrderType.LIMIT, TimeInForce.DAY, cid, limit_price=150.0)


def test_fault_504_after_accept_leaves_the_order_at_the_broker(server, env):
    b, sim, srv = _adapter(server, env, Faults(timeout_after_accept=1.0))
    with pytest.raises(BrokerUnavailable, match="504"):
        b.submit(_req("t1"))
    assert sim.get_by_client_id("t1") is not None  # accepted although the client saw an error
    assert b.get_by_client_id("t1").status == OrderStatus.NEW  # GETs are not affected
    assert srv.emulator.stats["504_after_accept"] == 1


def test_fault_dropped_connection_before_and_after(server, env):
    b, sim, srv = _adapter(server, env, Faults(drop_connection=1.0, seed=3))
    outcomes = []
    for i in range(12):
        with pytest.raises(BrokerUnavailable, match="outcome is unknown"):
            b.submit(_req(f"d{i}"))
        outcomes.append(sim.get_by_client_id(f"d{i}") is not None)
    stats = srv.emulator.stats
    assert stats["dropped_before"] + stats["dropped_after"] == 12
    assert sum(outcomes) == stats["dropped_after"] and 0 < sum(outcomes) < 12


def test_fault_429_burst_then_recovery(server, env):
    b, sim, srv = _adapter(server, env, Faults(rate_limit_burst=1.0, burst_length=2))
    for _ in range(2):
        with pytest.raises(RateLimited) as e:
            b.account()
        assert 0 <= e.value.retry_after <= 2
    srv.emulator.set_faults(Faults())
    assert b.account().equity == 1_000_000


def test_fault_5xx_not_processed(server, env):
    b, sim, srv = _adapter(server, env, Faults(server_error=1.0, seed=1))
    for i in range(6):
        with pytest.raises(BrokerUnavailable):
            b.submit(_req(f"e{i}"))
    assert sim.orders() == [] and srv.emulator.stats["5xx_injected"] == 6


def test_real_rate_limit_window(server, env):
    clock = FakeClock()
    b, sim, srv = _adapter(server, env, Faults(), rate_limit_per_minute=3, timer=clock.monotonic)
    for _ in range(3):
        b.account()
    with pytest.raises(RateLimited) as e:
        b.account()
    assert 58 <= e.value.retry_after <= 61
    clock.t = 60.5
    b.account()
    assert srv.emulator.stats["429_limit"] == 1


def test_faults_route_and_seeded_reproducibility(server):
    srv = server()
    r = requests.put(f"{srv.url}/_faults", json={"seed": 7, "server_error": 0.5}, timeout=5)
    assert r.json()["server_error"] == 0.5
    headers = {"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"}

    def codes() -> list[int]:
        requests.put(f"{srv.url}/_faults", json={"seed": 7, "server_error": 0.5}, timeout=5)
        return [requests.get(f"{srv.url}/v2/account", headers=headers, timeout=5).status_code for _ in range(20)]

    first = codes()
    assert first == codes() and {200} < set(first)
    assert requests.put(f"{srv.url}/_faults", json={"nope": 1}, timeout=5).status_code == 400
    with pytest.raises(ValueError):
        Faults(server_error=2.0)


def test_partial_fill_switch(server, env):
    sim = make_sim(1_000_000, fill_on_submit=True)
    srv = server(sim, Faults(partial_fill=1.0, seed=2))
    env(srv.url)
    o = AlpacaBroker(timeout=5).submit(OrderRequest("AAPL", 50, Side.BUY, OrderType.MARKET, TimeInForce.DAY, "pf"))
    assert o.status == OrderStatus.PARTIALLY_FILLED and 0 < o.filled_qty < 50


def test_state_survives_a_restart(server, env, tmp_path):
    path = tmp_path / "emulator.json"
    srv = server(make_sim(), state_path=path)
    env(srv.url)
    o = AlpacaBroker(timeout=5).submit(_req("persist-1"))
    srv.shutdown()
    again = server(SimBroker.load(path, clock=lambda: OPEN_935), state_path=path)
    env(again.url)
    got = AlpacaBroker(timeout=5).get_by_client_id("persist-1")
    assert got is not None and got.id == o.id


def test_server_binds_loopback_on_a_free_port(server):
    srv = server()
    assert srv.host == "127.0.0.1" and srv.port > 0 and srv.url == f"http://127.0.0.1:{srv.port}"
    with socket.create_connection((srv.host, srv.port), timeout=2):
        pass
    assert emulator_of(srv.app) is srv.emulator


# ---- the seed's failure case, through alpaca-py against the emulator --------------------------


def test_seed_case_naive_submission_fails(server, env):
    """Control: submitting the plan as sized (the seed's executor) leaves orders rejected."""
    plan, asks = make_plan(), gapped_asks()
    env(server(quoted_sim(asks, market_buffer=0.03)).url)
    b = AlpacaBroker(timeout=5)
    rejected = 0
    for po in plan.orders:
        try:
            b.submit(OrderRequest(po.symbol, po.qty, po.side, po.type, po.time_in_force, po.client_order_id))
        except InsufficientBuyingPower:
            rejected += 1
    assert rejected >= 1


@pytest.mark.parametrize("fill_on_submit, market_buffer, concurrency",
                         [(False, 0.03, 4), (True, 0.03, 4), (False, 0.05, 1)])
def test_seed_case_through_alpaca_py(server, env, tmp_path, fill_on_submit, market_buffer, concurrency):
    """12 of 12 accepted, >= 94% deployed, nothing unresolved — also when the broker reserves more
    per market share (5%) than the executor's default budget assumes (3%)."""
    from wolfkit.config import Params
    from wolfkit.execute import execute_plan
    from wolfkit.ledger import Ledger, OrderState

    plan, asks = make_plan(), gapped_asks()
    sim = quoted_sim(asks, market_buffer=market_buffer, fill_on_submit=fill_on_submit)
    srv = server(sim)
    env(srv.url)
    with Ledger(tmp_path / "ledger.sqlite", durable=False) as ledger:
        params = Params.model_validate({"execution": {"max_concurrency": concurrency}})
        report = execute_plan(plan, AlpacaBroker(timeout=5), ledger, params, now=lambda: OPEN,
                              sleep=lambda s: None)
        rows = ledger.orders_for_run(plan.run_id)
    assert report.accepted == 12 and report.unresolved == 0
    assert all(r.state in (OrderState.ACCEPTED, OrderState.FILLED) for r in rows)
    at_broker = {o.client_order_id: o for o in sim.orders()}
    assert {r.client_order_id for r in rows} <= set(at_broker) and len(at_broker) >= 12
    # deployed at the broker's own prices: fills at their price, open buys at the ask
    deployed = sum(o.filled_qty * (o.filled_avg_price or 0) + o.remaining_qty * asks[o.symbol]
                   for o in sim.orders() if o.status.is_open or o.filled_qty)
    assert deployed / 100_000 >= 0.94 and report.deployed_pct >= 0.94
    assert srv.emulator.stats["429_limit"] == 0


def test_alpaca_data_provider_reads_bars_and_quotes_from_the_emulator(server, env, tmp_path):
    """wolfkit's own alpaca data provider, unmodified, against the emulator backed by the demo market."""
    from wolfkit.calendar import latest_session, previous_session, sessions_ending
    from wolfkit.data.alpaca import AlpacaProvider
    from wolfkit.data.demo import DemoMarket

    demo = DemoMarket(seed=7)
    last = previous_session(latest_session(demo.end))
    days = sessions_ending(last, 5)
    srv = server(make_sim(now=datetime.combine(last, datetime.min.time(), NY).replace(hour=12)), data=demo)
    env(srv.url)
    (tmp_path / "u.csv").write_text("symbol,sector,market_cap\nAAPL,Tech,3e12\nMSFT,Tech,3e12\n")
    provider = AlpacaProvider(tmp_path / "u.csv", cache_dir=tmp_path / "cache")
    got = provider.daily_bars(["AAPL", "MSFT"], days[0], days[-1])
    want = demo.daily_bars(["AAPL", "MSFT"], days[0], days[-1])
    assert len(got) == 10
    assert got["close"].tolist() == pytest.approx(want["close"].tolist())
    minutes = provider.minute_bars(["AAPL"], last)
    assert len(minutes) == len(demo.minute_bars(["AAPL"], last)) >= 210
    q = provider.latest_quotes(["AAPL", "MSFT"], datetime.now(timezone.utc))
    assert q["ask"].tolist() == pytest.approx([190.095, 410.205])


# ---- every error is Alpaca's JSON, and maps through alpaca-py to wolfkit's errors ------------------


HEADERS = {"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"}
_ORDER = {"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"}


@pytest.mark.parametrize("method, path, body, status, code, wolfkit_error", [
    ("post", "/v2/orders", {**_ORDER, "symbol": "ZZZZ"}, 422, 40010001, OrderRejected),  # unknown symbol
    ("get", "/v2/orders/no-such-id", None, 404, 40410000, OrderNotFound),
    ("patch", "/v2/orders/no-such-id", {"qty": 2}, 404, 40410000, OrderNotFound),
    ("delete", "/v2/orders/no-such-id", None, 404, 40410000, OrderNotFound),
    ("post", "/v2/orders", "this is not json", 400, 40010000, OrderRejected),  # unreadable body
    ("post", "/v2/orders", [_ORDER], 400, 40010000, OrderRejected),  # JSON, but not an object
    ("post", "/v2/orders", {**_ORDER, "order_class": "bracket", "take_profit": "x"}, 422, 40010001, OrderRejected),
    ("post", "/v2/orders", {**_ORDER, "qty": -1}, 422, 40010001, OrderRejected),  # validation
    ("post", "/v2/orders", {k: v for k, v in _ORDER.items() if k != "qty"}, 422, 40010001, OrderRejected),
    ("get", "/v2/orders?limit=0", None, 422, 40010001, OrderRejected),
    ("get", "/v2/assets/ZZZZ", None, 404, 40410000, OrderNotFound),
    ("get", "/v2/positions/ZZZZ", None, 404, 40410000, OrderNotFound),
    ("get", "/v2/no-such-route", None, 404, 40410000, OrderNotFound),
    ("put", "/v2/account", None, 405, 40510000, OrderRejected),
])
def test_every_error_is_alpaca_json_and_maps_to_a_wolfkit_error(server, method, path, body, status, code,
                                                                 wolfkit_error):
    from wolfkit.broker.alpaca import map_api_error

    srv = server()
    kw = {"data": body, "headers": {**HEADERS, "Content-Type": "application/json"}} if isinstance(body, str) \
        else {"json": body, "headers": HEADERS}
    r = requests.request(method, srv.url + path, timeout=5, **kw)
    assert r.status_code == status and r.headers["Content-Type"].startswith("application/json"), r.text
    payload = r.json()
    assert payload["code"] == code and isinstance(payload["message"], str) and payload["message"]
    mapped = map_api_error(APIError(r.text, requests.HTTPError(response=r)))
    assert isinstance(mapped, wolfkit_error), (mapped, payload)


def test_an_internal_error_is_a_json_500_and_an_unknown_outcome(server, env, monkeypatch):
    sim = make_sim()
    srv = server(sim)

    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(sim, "account", broken)
    r = requests.get(f"{srv.url}/v2/account", headers=HEADERS, timeout=5)
    assert r.status_code == 500 and r.json() == {"code": 50010000, "message": "internal server error: RuntimeError: boom"}
    env(srv.url)
    with pytest.raises(BrokerUnavailable, match="boom"):
        AlpacaBroker(timeout=5).account()


def test_unknown_symbol_round_trip_through_alpaca_py_and_the_adapter(server, env):
    srv = server()
    tc = client(srv.url)
    with pytest.raises(APIError) as e:
        tc.submit_order(MarketOrderRequest(symbol="ZZZZ", qty=1, side=OrderSide.BUY, time_in_force=AlpacaTIF.DAY))
    assert (e.value.status_code, e.value.code) == (422, 40010001) and "ZZZZ" in e.value.message
    with pytest.raises(APIError) as e:
        tc.get_asset("ZZZZ")
    assert (e.value.status_code, e.value.code) == (404, 40410000)
    assert tc.get_asset("AAPL").symbol == "AAPL"
    with pytest.raises(APIError) as e:
        tc.get_open_position("ZZZZ")
    assert (e.value.status_code, e.value.code, e.value.message) == (404, 40410000, "position does not exist")
    env(srv.url)
    b = AlpacaBroker(timeout=5)
    with pytest.raises(OrderRejected) as rejected:
        b.submit(OrderRequest("ZZZZ", 1, Side.BUY, OrderType.MARKET, TimeInForce.DAY, "unknown-sym"))
    assert (rejected.value.status_code, rejected.value.code) == (422, 40010001)
    with pytest.raises(OrderNotFound):
        b.get("00000000-0000-4000-8000-000000000000")
    with pytest.raises(OrderNotFound):
        b.cancel("00000000-0000-4000-8000-000000000000")


# ---- the order list behaves like Alpaca's: status, after/until, direction, limit, nested ------------


def test_order_list_pages_by_time_in_both_directions(server):
    """Orders sent in the same instant still get distinct, ordered submission times, so a client pages
    with `after` (asc) or `until` (desc) set to the last row's submitted_at and sees each order once."""
    srv = server(make_sim(1_000_000))
    tc = client(srv.url)
    sent = []
    for i in range(7):
        o = tc.submit_order(LimitOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY,
                                              time_in_force=AlpacaTIF.DAY, limit_price=150.0, client_order_id=f"p{i}"))
        sent.append(o.client_order_id)
    tc.cancel_order_by_id(tc.get_order_by_client_id("p3").id)

    def pages(direction: str) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            edge = {"after": cursor} if direction == "asc" else {"until": cursor}
            page = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=3, direction=direction,
                                                  **(edge if cursor else {})))
            seen += [o.client_order_id for o in page]
            if len(page) < 3:
                return seen
            cursor = page[-1].submitted_at

    assert pages("asc") == sent
    assert pages("desc") == sent[::-1]
    opened = tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500, direction="asc"))
    assert [o.client_order_id for o in opened] == [c for c in sent if c != "p3"]
    assert len({o.submitted_at for o in tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))}) == 7
    r = requests.get(f"{srv.url}/v2/orders", params={"direction": "sideways"}, headers=HEADERS, timeout=5)
    assert r.status_code == 422 and r.json()["code"] == 40010001


def test_bars_for_an_unknown_symbol_are_empty_not_a_500(server):
    """The issue's "unknown symbol answers an HTML 500": the demo provider refuses names outside its
    universe; the emulator answers as Alpaca does — no bars for that symbol, the others as usual."""
    from wolfkit.data.demo import DemoMarket

    srv = server(data=DemoMarket(seed=7))
    dc = StockHistoricalDataClient("k", "s", url_override=srv.url)
    got = dc.get_stock_bars(StockBarsRequest(symbol_or_symbols=["AAPL", "ZZZZ"], timeframe=TimeFrame.Day,
                                             start=datetime(2024, 5, 28), end=datetime(2024, 5, 31)))
    assert set(got.data) == {"AAPL"} and len(got.data["AAPL"]) == 3  # 28, 29, 30 May
    r = requests.get(f"{srv.url}/v2/stocks/bars", params={"symbols": "ZZZZ", "timeframe": "1Min"},
                     headers=HEADERS, timeout=10)
    assert r.status_code == 200 and r.json() == {"bars": {}, "next_page_token": None}
