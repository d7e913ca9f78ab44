"""AlpacaBroker at the HTTP layer (requests-mock): error mapping, one request per call, timeouts."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from wolfkit.broker.alpaca import AlpacaBroker, map_api_error
from wolfkit.broker.base import (
    Broker,
    BrokerUnavailable,
    DuplicateClientOrderId,
    InsufficientBuyingPower,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    RateLimited,
    UpdateEvent,
    WashTradeRejected,
)
from wolfkit.domain import OrderType, Side, TimeInForce
from wolfkit.errors import BadInputError

BASE = "http://127.0.0.1:9"  # loopback: the live gate refuses any other non-paper host
DATA = "http://data.test"
IBP_BODY = {"buying_power": "176531.28", "code": 40310000, "cost_basis": "48640000",
            "message": "insufficient buying power"}


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("APCA_API_KEY_ID", "key-id-xyz")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "secret-abc")
    monkeypatch.setenv("APCA_API_BASE_URL", BASE)
    monkeypatch.setenv("APCA_API_DATA_URL", DATA)


@pytest.fixture
def broker(env) -> AlpacaBroker:
    return AlpacaBroker(timeout=2.5)


def order_json(**kw) -> dict:
    now = "2024-06-03T13:30:00.123456Z"
    o = {
        "id": str(uuid.uuid4()), "client_order_id": "wk-1", "created_at": now, "updated_at": now,
        "submitted_at": now, "filled_at": None, "asset_id": str(uuid.uuid4()), "symbol": "AAPL",
        "asset_class": "us_equity", "qty": "10", "filled_qty": "0", "filled_avg_price": None,
        "order_class": "simple", "order_type": "market", "type": "market", "side": "buy",
        "time_in_force": "day", "limit_price": None, "stop_price": None, "status": "accepted",
        "extended_hours": False, "legs": None, "replaced_by": None, "replaces": None,
    }
    o.update(kw)
    return o


def request(**kw) -> OrderRequest:
    base = dict(symbol="AAPL", qty=10, side=Side.BUY, type=OrderType.MARKET, time_in_force=TimeInForce.DAY,
                client_order_id="wk-1")
    base.update(kw)
    return OrderRequest(**base)


def test_is_a_broker(broker):
    assert isinstance(broker, Broker)
    assert broker.name == "alpaca-paper"
    assert "key-id-xyz" not in repr(broker) and "secret-abc" not in repr(broker)


def test_missing_keys_is_bad_input_without_leaking(monkeypatch):
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.setenv("APCA_API_SECRET_KEY", "secret-abc")
    with pytest.raises(BadInputError, match="APCA_API_KEY_ID") as e:
        AlpacaBroker()
    assert "secret-abc" not in str(e.value) and "APCA_API_SECRET_KEY" not in str(e.value)


def test_base_url_env_with_or_without_v2(env, monkeypatch, requests_mock):
    monkeypatch.setenv("APCA_API_BASE_URL", BASE + "/v2/")
    requests_mock.get(f"{BASE}/v2/account", json={"id": str(uuid.uuid4()), "account_number": "PA1",
                                                  "status": "ACTIVE", "equity": "100000", "cash": "100000",
                                                  "buying_power": "200000", "multiplier": "2"})
    acct = AlpacaBroker().account()
    assert (acct.equity, acct.buying_power, acct.multiplier) == (100_000, 200_000, 2)
    assert requests_mock.last_request.headers["APCA-API-KEY-ID"] == "key-id-xyz"


def test_every_request_has_the_timeout(broker, requests_mock):
    requests_mock.post(f"{BASE}/v2/orders", json=order_json())
    requests_mock.get(f"{DATA}/v2/stocks/quotes/latest", json={"quotes": {
        "AAPL": {"t": "2024-06-03T13:30:00Z", "ap": 190.5, "as": 3, "bp": 190.4, "bs": 2}}})
    broker.submit(request())
    q = broker.quotes(["AAPL"])
    assert q["AAPL"].ask == 190.5 and q["AAPL"].bid == 190.4
    assert [r.timeout for r in requests_mock.request_history] == [2.5, 2.5]


def test_submit_sends_typed_fields_and_maps_the_order(broker, requests_mock):
    oid = str(uuid.uuid4())
    requests_mock.post(f"{BASE}/v2/orders", json=order_json(id=oid, type="limit", order_type="limit",
                                                              limit_price="190.12", status="new"))
    got = broker.submit(request(type=OrderType.LIMIT, limit_price=190.12, take_profit=200.0, stop_loss=180.0))
    body = requests_mock.last_request.json()
    assert body["client_order_id"] == "wk-1" and body["limit_price"] == 190.12 and body["type"] == "limit"
    assert body["order_class"] == "bracket"
    assert body["take_profit"] == {"limit_price": 200.0} and body["stop_loss"] == {"stop_price": 180.0}
    assert (got.id, got.status, got.type, got.limit_price) == (oid, OrderStatus.NEW, OrderType.LIMIT, 190.12)


def test_one_exit_makes_an_oto(broker, requests_mock):
    requests_mock.post(f"{BASE}/v2/orders", json=order_json())
    broker.submit(request(take_profit=200.0))
    body = requests_mock.last_request.json()
    assert body["order_class"] == "oto" and "stop_loss" not in body


def test_insufficient_buying_power_403_body_parsed(broker, requests_mock):
    requests_mock.post(f"{BASE}/v2/orders", status_code=403, json=IBP_BODY)
    with pytest.raises(InsufficientBuyingPower) as e:
        broker.submit(request())
    assert e.value.buying_power == 176531.28 and e.value.cost_basis == 48_640_000


def test_other_403_with_the_same_code_is_not_buying_power(broker, requests_mock):
    requests_mock.post(f"{BASE}/v2/orders", status_code=403,
                       json={"code": 40310000, "message": "account is not allowed to short"})
    with pytest.raises(OrderRejected) as e:
        broker.submit(request())
    assert not isinstance(e.value, InsufficientBuyingPower)
    assert e.value.code == 40310000 and e.value.status_code == 403


def test_wash_trade_403(broker, requests_mock):
    requests_mock.post(f"{BASE}/v2/orders", status_code=403, json={
        "code": 40310000, "message": "potential wash trade detected. use complex orders"})
    with pytest.raises(WashTradeRejected):
        broker.submit(request())


def test_duplicate_client_id_422(broker, requests_mock):
    requests_mock.post(f"{BASE}/v2/orders", status_code=422,
                       json={"code": 40010001, "message": "client_order_id must be unique"})
    with pytest.raises(DuplicateClientOrderId):
        broker.submit(request())


def test_off_tick_422_is_a_rejection(broker, requests_mock):
    requests_mock.post(f"{BASE}/v2/orders", status_code=422, json={
        "code": 40010001, "message": "invalid limit_price 190.123. sub-penny increment does not fulfill minimum pricing criteria"})
    with pytest.raises(OrderRejected, match="sub-penny") as e:
        broker.submit(request())
    assert e.value.status_code == 422


def test_429_maps_reset_header_and_is_not_retried(broker, requests_mock):
    reset = int(time.time()) + 7
    requests_mock.post(f"{BASE}/v2/orders", status_code=429, headers={"X-Ratelimit-Reset": str(reset)},
                       json={"code": 42910000, "message": "rate limit exceeded"})
    t0 = time.monotonic()
    with pytest.raises(RateLimited) as e:
        broker.submit(request())
    assert requests_mock.call_count == 1  # alpaca-py's own 3 retries (3 s sleeps) are off
    assert time.monotonic() - t0 < 1
    assert 5 <= e.value.retry_after <= 7


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_unavailable_and_not_retried(broker, requests_mock, status):
    requests_mock.post(f"{BASE}/v2/orders", status_code=status, text="<html><body>Gateway</body></html>")
    with pytest.raises(BrokerUnavailable, match=str(status)):
        broker.submit(request())
    assert requests_mock.call_count == 1


@pytest.mark.parametrize("text", ["", "<html>forbidden</html>", "[1, 2]", "not json"])
def test_empty_or_html_bodies_do_not_crash_the_mapping(broker, requests_mock, text):
    requests_mock.post(f"{BASE}/v2/orders", status_code=403, text=text)
    with pytest.raises(OrderRejected) as e:
        broker.submit(request())
    assert e.value.status_code == 403 and not isinstance(e.value, InsufficientBuyingPower)


@pytest.mark.parametrize("exc", [requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout,
                                 requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError])
def test_transport_failures_are_unavailable(broker, requests_mock, exc):
    requests_mock.post(f"{BASE}/v2/orders", exc=exc)
    with pytest.raises(BrokerUnavailable, match="outcome is unknown"):
        broker.submit(request())
    assert requests_mock.call_count == 1


def test_non_json_success_body_is_unavailable(broker, requests_mock):
    requests_mock.post(f"{BASE}/v2/orders", status_code=200, text="<html>proxy</html>")
    with pytest.raises(BrokerUnavailable):
        broker.submit(request())


def test_401_is_bad_input_naming_the_env_vars(broker, requests_mock):
    requests_mock.get(f"{BASE}/v2/account", status_code=401, json={"code": 40110000, "message": "unauthorized."})
    with pytest.raises(BadInputError, match="APCA_API_KEY_ID"):
        broker.account()


def test_get_by_client_id_found_and_missing(broker, requests_mock):
    url = f"{BASE}/v2/orders:by_client_order_id"
    requests_mock.get(url + "?client_order_id=wk-1", json=order_json(status="filled", filled_qty="10",
                                                                     filled_avg_price="190.2"))
    requests_mock.get(url + "?client_order_id=wk-2", status_code=404,
                      json={"code": 40410000, "message": "order not found"})
    got = broker.get_by_client_id("wk-1")
    assert got.status == OrderStatus.FILLED and got.filled_qty == 10 and got.filled_avg_price == 190.2
    assert broker.get_by_client_id("wk-2") is None


def test_cancel_and_replace(broker, requests_mock):
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    requests_mock.delete(f"{BASE}/v2/orders/{old}", status_code=204)
    broker.cancel(old)
    requests_mock.delete(f"{BASE}/v2/orders/{new}", status_code=404, json={"code": 40410000, "message": "order not found"})
    with pytest.raises(OrderNotFound):
        broker.cancel(new)
    requests_mock.patch(f"{BASE}/v2/orders/{old}", json=order_json(id=new, replaces=old, qty="7", client_order_id="wk-1b"))
    got = broker.replace(old, qty=7, client_order_id="wk-1b")
    assert requests_mock.last_request.json() == {"qty": 7, "client_order_id": "wk-1b"}
    assert (got.id, got.replaces, got.qty) == (new, old, 7)


def test_open_orders_pages_past_500(broker, requests_mock):
    first = [order_json(submitted_at=f"2024-06-03T13:{i // 60:02d}:{i % 60:02d}Z", client_order_id=f"c{i}")
             for i in range(500)]
    second = [order_json(submitted_at="2024-06-03T14:00:00Z", client_order_id="c500")]
    requests_mock.get(f"{BASE}/v2/orders", [{"json": first}, {"json": second}])
    got = broker.open_orders()
    assert len(got) == 501
    q1, q2 = (r.qs for r in requests_mock.request_history)
    assert q1["status"] == ["open"] and q1["limit"] == ["500"] and q1["direction"] == ["asc"]
    assert "after" not in q1 and q2["after"][0].startswith("2024-06-03t13:08:18.999999")  # last seen, minus 1 µs


def test_positions_signed(broker, requests_mock):
    requests_mock.get(f"{BASE}/v2/positions", json=[
        {"asset_id": str(uuid.uuid4()), "symbol": "TSLA", "exchange": "NASDAQ", "asset_class": "us_equity",
         "avg_entry_price": "200", "qty": "-5", "side": "short", "market_value": "-1000",
         "cost_basis": "-1000", "unrealized_pl": "0"}])
    (p,) = broker.positions()
    assert p.qty == -5 and p.market_value == -1000


def test_map_api_error_stands_alone():
    from alpaca.common.exceptions import APIError

    assert isinstance(map_api_error(APIError("")), BrokerUnavailable)  # no HTTP response: outcome unknown


def test_updates_diff_new_partial_fill_then_fill(broker, requests_mock):
    oid = str(uuid.uuid4())
    states = [
        [order_json(id=oid, status="new")],
        [order_json(id=oid, status="partially_filled", filled_qty="4", filled_avg_price="100")],
        [order_json(id=oid, status="filled", filled_qty="10", filled_avg_price="101.2")],
        [order_json(id=oid, status="filled", filled_qty="10", filled_avg_price="101.2")],
    ]
    requests_mock.get(f"{BASE}/v2/orders", [{"json": s} for s in states])
    requests_mock.get(f"{BASE}/v2/clock", json={"timestamp": "2024-06-03T09:40:00-04:00", "is_open": True,
                                                "next_open": "2024-06-04T09:30:00-04:00",
                                                "next_close": "2024-06-03T16:00:00-04:00"})
    first, second, third, fourth = (broker.updates() for _ in range(4))
    assert [u.event for u in first] == [UpdateEvent.NEW]
    assert [u.event for u in second] == [UpdateEvent.PARTIAL_FILL] and second[0].fill.qty == 4
    assert [u.event for u in third] == [UpdateEvent.FILL]
    assert third[0].fill.qty == 6 and third[0].fill.price == pytest.approx(102.0)
    assert fourth == []
    q = requests_mock.last_request.qs
    assert q["status"] == ["all"] and q["after"][0].startswith("2024-06-03t09:39:00-04:00")  # server clock − 1 min
