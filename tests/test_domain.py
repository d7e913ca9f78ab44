"""The shared trading vocabulary (`wolfkit.domain`), and the orders file that is written with it."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from wolfkit.config import load_params
from wolfkit.domain import (
    CLIENT_ID_MAX,
    ClientOrderId,
    Layer,
    MaxdiffSide,
    Side,
    Strategy,
    round_to_tick,
)
from wolfkit.orders import MaxdiffPlan, build_order_plan, read_orders, write_orders
from wolfkit.scan import run_scan

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden") / "demo_orders.json"


def test_side_opposite():
    assert Side.BUY.opposite() is Side.SELL and Side.SELL.opposite() is Side.BUY
    assert Side("buy").opposite() == "sell"


def test_maxdiff_side_says_what_it_places():
    assert [(s.buys, s.sells, s.opening_side) for s in MaxdiffSide] == [
        (True, False, Side.BUY), (False, True, Side.SELL), (True, True, Side.BUY)]


def test_strategies_a_row_may_name_exclude_the_maxdiff_layer():
    assert Strategy.directional() == (Strategy.TAKEPROFIT, Strategy.HIGHLOW, Strategy.SIMPLE)


@pytest.mark.parametrize(("price", "side", "want"), [
    (178.2049, Side.BUY, 178.20), (178.2001, Side.SELL, 178.21), (178.205, None, 178.21),
    (0.123456, Side.BUY, 0.1234), (0.123412, Side.SELL, 0.1235), (1.0, Side.SELL, 1.0), (99.99, "buy", 99.99),
])
def test_round_to_tick_favours_the_trader(price, side, want):
    assert round_to_tick(price, side) == want


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_round_to_tick_refuses_a_non_price(bad):
    with pytest.raises(ValueError, match="positive finite"):
        round_to_tick(bad)


def test_client_order_id_is_deterministic_and_readable():
    a = ClientOrderId.for_order("20240603-abc", "pack", "AAPL", Layer.DIRECTIONAL)
    assert a == ClientOrderId.for_order("20240603-abc", "pack", "AAPL", "directional")
    assert str(a).startswith("wk-20240603-abc-pack-AAPL-dir-") and len(str(a)) == 40 and a.attempt == 0
    assert a != ClientOrderId.for_order("20240603-abc", "pack", "AAPL", Layer.MAXDIFF)
    longest = ClientOrderId.for_order("r" * 99, "p" * 99, "S" * 99, Layer.MAXDIFF)
    assert len(str(longest)) == 88  # room for any -rN suffix within Alpaca's 128


def test_client_order_id_retries_and_parses_back():
    base = ClientOrderId.for_order("run", "pack", "MSFT", Layer.MAXDIFF)
    r3 = base.retry(3)
    assert (r3.base, r3.attempt, str(r3)) == (base.base, 3, f"{base}-r3")
    assert r3.retry(0) == base and str(base.retry(0)) == base.base
    bases = {base.base, "wk-other"}
    assert ClientOrderId.parse(str(r3), bases) == r3
    assert ClientOrderId.parse(base.base, bases) == base
    for foreign in (f"{base}-r0", f"{base}-r03", f"{base}-x1", "wk-unknown-r2", f"{base}-r1-tp"):
        assert ClientOrderId.parse(foreign, bases) is None, foreign


def test_a_long_base_is_cut_to_fit_and_still_parses():
    base = "x" * CLIENT_ID_MAX
    r12 = ClientOrderId(base, 12)
    assert len(str(r12)) == CLIENT_ID_MAX and str(r12).endswith("x-r12")
    assert ClientOrderId.parse(str(r12), {base, "y" * CLIENT_ID_MAX}) == r12
    assert ClientOrderId.parse(str(r12), {"y" * CLIENT_ID_MAX}) is None


def test_client_order_id_refuses_nonsense():
    with pytest.raises(ValueError):
        ClientOrderId("")
    with pytest.raises(ValueError):
        ClientOrderId("wk-1", -1)


def test_maxdiff_plan_side_is_the_enum():
    p = MaxdiffPlan(symbol="AAPL", high_target=2.0, low_target=1.0, side="both", avg_return=0.01,
                    status="queued", rank=1)
    assert p.side is MaxdiffSide.BOTH and p.model_dump(mode="json")["side"] == "both"
    with pytest.raises(ValidationError, match="'buy', 'sell' or 'both'"):
        MaxdiffPlan(symbol="AAPL", high_target=2.0, low_target=1.0, side="short", avg_return=0.01,
                    status="queued", rank=1)


def test_the_demo_orders_file_is_byte_identical_to_the_one_written_before_the_enums_moved(tmp_path):
    """The demo plan (margin account, directional and maxdiff orders, a sell plan) written now equals the file
    the builder wrote before the shared types moved to `wolfkit.domain`. The parameters digest is taken from
    today's parameters: a new knob changes it without changing a single order."""
    # the risk rules (params.risk) change which names the pack holds, not how a plan is written: off here
    params = load_params(ROOT / "parameters" / "demo.yaml").with_changes({"risk": {
        "min_price": 0, "min_adv_usd": 0, "max_adv_share": None, "max_position_risk": None,
        "maxdiff_in_cap_bands": False}})
    session = date(2024, 6, 3)
    scan = run_scan(params, session)
    res = build_order_plan(scan.opportunities, params, equity=100_000.0, buying_power=200_000.0, as_of=session,
                           run_id="demo-golden", created_at=datetime(2024, 6, 3, 12, tzinfo=timezone.utc),
                           synthetic=bool(scan.synthetic))
    written = write_orders(res.plan, tmp_path / "orders.json").read_bytes()
    golden = GOLDEN.read_bytes()
    old_digest = json.loads(golden)["params_digest"]
    golden = golden.replace(f'"params_digest": "{old_digest}"'.encode(), f'"params_digest": "{params.digest()}"'.encode())
    assert written == golden
    plan = read_orders(tmp_path / "orders.json")
    assert {o.strategy for o in plan.orders} >= {Strategy.MAXDIFF, Strategy.SIMPLE}
    assert {p.side for p in plan.maxdiff_plans} == set(MaxdiffSide)
    assert plan.to_json().encode() == written  # read back and written again: the same bytes
