"""The pre-market report's warnings (`wolfkit.report.warnings.plan_warnings`) on plans built by hand
and on the demo plan, and the orders table's exits and rounded weights."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from factories import REFERENCE_PACK, make_plan, planned_order

from wolfkit.config import Params, load_params
from wolfkit.diversify.bands import BandMiss, Miss
from wolfkit.domain import Layer, Side
from wolfkit.report.plan import NONE, commitments, orders_table
from wolfkit.report.warnings import Severity, WarningKind, plan_warnings, warnings_frame

ROOT = Path(__file__).resolve().parents[1]
CLEAN_PACK = tuple(e for e in REFERENCE_PACK if e.close >= 5)  # IBRX trades at $4.20


def kinds(rows) -> list[tuple[WarningKind, str | None]]:
    return [(w.kind, w.symbol) for w in rows]


def test_a_clean_cash_plan_has_no_warnings():
    plan = make_plan(pack=CLEAN_PACK)
    assert plan_warnings(plan, Params(), data_through=date(2024, 5, 31), expected_through=date(2024, 5, 31)) == []
    assert warnings_frame([]).empty


def test_penny_stock_is_flagged_with_its_price_and_floor():
    rows = plan_warnings(make_plan(), Params())
    assert kinds(rows) == [(WarningKind.PRICE_FLOOR, "IBRX")]
    assert "$4.20" in rows[0].message and "$5.00" in rows[0].message and rows[0].severity is Severity.WARNING
    lower = Params().with_changes({"report": {"warn_price_below": 4.0}})
    assert plan_warnings(make_plan(), lower) == []


def test_margin_in_use_and_over_buying_power():
    plan = make_plan(pack=CLEAN_PACK, scale=1.2, buying_power=200_000)
    c = commitments(plan)
    assert c["committed"] > c["equity"] and c["margin"] == pytest.approx(c["committed"] - c["equity"])
    rows = plan_warnings(plan, Params())
    assert kinds(rows) == [(WarningKind.MARGIN, None)]
    assert f"{c['committed'] / c['equity']:.2f}x" in rows[0].message
    tight = make_plan(pack=CLEAN_PACK, scale=1.2, buying_power=101_000)
    assert [w.kind for w in plan_warnings(tight, Params())] == [WarningKind.MARGIN, WarningKind.BUYING_POWER]


def test_maxdiff_buy_beside_a_bracket_stop_on_the_same_symbol():
    nvda = next(e for e in CLEAN_PACK if e.symbol == "NVDA")
    stop = round(nvda.close * 0.95, 2)
    plan = make_plan(pack=CLEAN_PACK, brackets=True, buying_power=200_000,
                     maxdiff=[("NVDA", 10, stop), ("AMD", 5, 150.0)])
    rows = [w for w in plan_warnings(plan, Params()) if w.kind is WarningKind.OPPOSITE_SIDES]
    # both have a directional bracket (its sell legs) and a maxdiff buy limit: each is flagged once
    assert sorted(w.symbol for w in rows) == ["AMD", "NVDA"]
    msg = next(w.message for w in rows if w.symbol == "NVDA")
    assert f"maxdiff buy limit {stop:,.2f}" in msg and f"stop sell {stop:,.2f}" in msg and "0.0% from the stop" in msg


def test_same_side_orders_or_a_bracket_alone_are_no_clash():
    no_brackets = make_plan(pack=CLEAN_PACK, maxdiff=[("NVDA", 10, 400.0)])
    assert not [w for w in plan_warnings(no_brackets, Params()) if w.kind is WarningKind.OPPOSITE_SIDES]
    brackets_only = make_plan(pack=CLEAN_PACK, brackets=True)
    assert not [w for w in plan_warnings(brackets_only, Params()) if w.kind is WarningKind.OPPOSITE_SIDES]
    sell = planned_order("NVDA", 5, 460.0, layer=Layer.MAXDIFF, side=Side.SELL, priority=99)
    with_sell = make_plan(pack=CLEAN_PACK, extra=[sell], buying_power=200_000)
    assert [w.symbol for w in plan_warnings(with_sell, Params()) if w.kind is WarningKind.OPPOSITE_SIDES] == ["NVDA"]


def test_stale_data_and_synthetic_prices():
    plan = make_plan(pack=CLEAN_PACK).model_copy(update={"synthetic_prices": True})
    rows = plan_warnings(plan, Params(), data_through=date(2024, 5, 29), expected_through=date(2024, 5, 31))
    assert [w.kind for w in rows] == [WarningKind.SYNTHETIC, WarningKind.STALE_DATA]
    assert "2024-05-29" in rows[1].message and "2024-05-31" in rows[1].message


def test_rules_met_only_partly_band_misses_and_count_notes():
    miss = BandMiss("micro", (0.05, 0.15), 0.0, Miss.BELOW, "no micro-cap candidate")
    plan = make_plan(pack=CLEAN_PACK)
    plan = plan.model_copy(update={"summary": plan.summary.model_copy(
        update={"notes": ["10 positions, not 12: the sector caps bind", miss.note()]})})
    rows = plan_warnings(plan, Params(), band_misses=[miss])
    assert [(w.kind, w.severity) for w in rows] == [(WarningKind.PARTLY_MET, Severity.WARNING),
                                                   (WarningKind.PARTLY_MET, Severity.NOTICE)]
    assert "micro" in rows[0].message and "sector caps bind" in rows[1].message
    # read back from its file, the plan carries the band line only as a note: still a warning, once
    again = plan_warnings(plan, Params())
    assert sorted((w.severity, w.message) for w in again) == sorted((w.severity, w.message) for w in rows)
    assert warnings_frame(again)["severity"].tolist() == ["warning", "notice"]


def test_liquidity_from_the_opportunities_adv_column():
    plan = make_plan(pack=CLEAN_PACK)
    opps = pd.DataFrame({"symbol": [e.symbol for e in CLEAN_PACK], "adv_usd": 1e9})
    assert plan_warnings(plan, Params(), opportunities=opps) == []
    nvda_cost = next(o.est_cost for o in plan.orders if o.symbol == "NVDA")
    opps.loc[opps["symbol"] == "NVDA", "adv_usd"] = 2e6  # thin; its $11.7k order is 0.6% of that, under 1%
    rows = plan_warnings(plan, Params(), opportunities=opps)
    assert kinds(rows) == [(WarningKind.LIQUIDITY, "NVDA")] and "$2,000,000" in rows[0].message
    opps.loc[opps["symbol"] == "NVDA", "adv_usd"] = nvda_cost * 50  # the order is 2% of the ADV
    share = [w for w in plan_warnings(plan, Params(), opportunities=opps) if "of its average" in w.message]
    assert [w.symbol for w in share] == ["NVDA"] and "2.0%" in share[0].message
    missing = plan_warnings(plan, Params(), opportunities=opps.drop(columns=["adv_usd"]))
    assert [(w.kind, w.severity) for w in missing] == [(WarningKind.LIQUIDITY, Severity.NOTICE)]


def test_orders_table_shows_exits_and_weights_after_rounding():
    plan = make_plan(pack=CLEAN_PACK, brackets=True, maxdiff=[("NVDA", 10, 400.0)], buying_power=200_000)
    df = orders_table(plan)
    d = df[(df["layer"] == "directional") & (df["symbol"] == "AMD")].iloc[0]  # 48 shares: 7.68%, target 7.8%
    o = next(x for x in plan.orders if x.symbol == d["symbol"] and x.layer == Layer.DIRECTIONAL)
    assert d["take_profit"] == f"{o.take_profit:,.2f}" and d["stop"] == f"{o.stop_loss:,.2f}"
    assert d["weight"] == pytest.approx(o.qty * o.est_price / plan.account.equity) and d["weight"] != o.weight
    m = df[df["layer"] == "maxdiff"].iloc[0]
    assert (m["take_profit"], m["stop"], m["other_exits"], m["order"]) == (NONE, NONE, NONE, "limit 400.00")


RISK_OFF = {"min_price": 0, "min_adv_usd": 0, "max_adv_share": None, "max_position_risk": None}


@pytest.fixture(scope="module")
def demo_build():
    from wolfkit.orders import build_order_plan
    from wolfkit.scan import run_scan

    # the builder's risk rules off (they keep penny stocks and thin names out): the report's flags must catch them
    params = load_params(ROOT / "parameters/demo.yaml").with_changes({"risk": RISK_OFF})
    session = date(2026, 11, 20)
    scan = run_scan(params, session)
    return params, scan, build_order_plan(scan.opportunities, params, equity=100_000.0, buying_power=None,
                                          as_of=session, synthetic=True)


def test_the_demo_plan_warnings(demo_build):
    params, scan, build = demo_build
    plan = build.plan
    rows = plan_warnings(plan, params, data_through=scan.data_through, expected_through=date(2026, 11, 19),
                         opportunities=scan.opportunities, band_misses=build.targets.band_misses)
    got = {k: sorted(w.symbol or "" for w in rows if w.kind is k) for k in WarningKind}
    penny = sorted({o.symbol for o in plan.orders if o.est_price < params.report.warn_price_below})
    assert got[WarningKind.PRICE_FLOOR] == penny and penny, "the demo pack holds penny stocks"
    committed = sum(o.est_cost for o in plan.orders)
    assert bool(got[WarningKind.MARGIN]) == (committed > plan.account.equity)
    clash = sorted({o.symbol for o in plan.orders if o.layer == Layer.DIRECTIONAL
                    and (o.stop_loss is not None or o.take_profit is not None)}  # a bracket's sell legs
                   & {o.symbol for o in plan.orders if o.layer == Layer.MAXDIFF and o.side == Side.BUY})
    assert got[WarningKind.OPPOSITE_SIDES] == clash
    assert got[WarningKind.SYNTHETIC] == [""] and not got[WarningKind.STALE_DATA]
    assert len(got[WarningKind.PARTLY_MET]) == len(build.targets.band_misses) + len(
        [n for n in plan.summary.notes if not n.startswith("market-cap band ")])


def test_with_the_risk_rules_on_the_demo_pack_holds_nothing_the_report_flags():
    """The builder's rules (the defaults) keep out what the report's flags would catch."""
    from wolfkit.orders import build_order_plan
    from wolfkit.scan import run_scan

    params = load_params(ROOT / "parameters/demo.yaml")
    session = date(2026, 11, 20)
    scan = run_scan(params, session)
    plan = build_order_plan(scan.opportunities, params, equity=100_000.0, buying_power=None, as_of=session,
                            synthetic=True).plan
    assert all(o.est_price >= params.risk.min_price for o in plan.orders)
    flagged = {w.kind for w in plan_warnings(plan, params, opportunities=scan.opportunities)}
    assert WarningKind.PRICE_FLOOR not in flagged
