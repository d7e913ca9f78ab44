"""orders: reading/validating the file, and build_order_plan (deterministic ids, ticks, ramps, summary)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import pytest
from factories import planned_order

from wolfkit.cli import main
from wolfkit.config import Params, params_from_dict
from wolfkit.domain import Layer, OrderType, Side, TimeInForce, round_to_tick
from wolfkit.errors import BadInputError
from wolfkit.orders import (
    PlannedOrder,
    build_order_plan,
    consolidate,
    read_orders,
    write_orders,
)

AS_OF = date(2026, 1, 20)
CREATED = datetime(2026, 1, 20, 13, 30, tzinfo=timezone.utc)


def opps(n: int = 50, seed: int = 1) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    price = r.uniform(0.5, 600, n).round(4)
    return pd.DataFrame({
        "symbol": [f"S{i:03d}" for i in range(n)],
        "sector": [f"sec{k}" for k in r.integers(0, 11, n)],
        "market_cap": 10 ** r.uniform(9, 12.3, n),
        "price": price,
        "score": r.uniform(60, 100, n).round(1),
        "strategy": r.choice(["takeprofit", "highlow", "simple"], n),
        "take_profit": price * 1.05,
        "stop_loss": price * 0.97,
        "pred_high": price * 1.02,
        "pred_low": price * 0.98,
        "maxdiff_avg_return": r.uniform(0.0005, 0.006, n),
        "maxdiff_side": r.choice(["buy", "sell", "both"], n),
    })


def build(p=None, **kw):
    return build_order_plan(opps(), p or Params(), 100_000.0, kw.pop("bp", 200_000.0), AS_OF, created_at=CREATED, **kw)


def test_plan_is_deterministic_and_valid(tmp_path):
    a, b = build(), build()
    assert a.plan.to_json() == b.plan.to_json()
    ids = [o.client_order_id for o in a.plan.orders]
    assert len(set(ids)) == len(ids) and all(len(i) <= 128 for i in ids)
    other = build_order_plan(opps(seed=2), Params(), 100_000.0, 200_000.0, AS_OF, created_at=CREATED)
    assert not set(ids) & {o.client_order_id for o in other.plan.orders}
    path = write_orders(a.plan, tmp_path / "orders.json")
    assert read_orders(path) == a.plan


def test_directional_then_maxdiff_priorities_and_prices():
    r = build()
    plan = r.plan
    assert [o.priority for o in plan.orders] == list(range(len(plan.orders)))
    layers = [o.layer for o in plan.orders]
    assert layers == sorted(layers, key=lambda x: x != Layer.DIRECTIONAL)
    d = [o for o in plan.orders if o.layer == Layer.DIRECTIONAL]
    assert [o.weight for o in d] == sorted((o.weight for o in d), reverse=True)
    src = opps().set_index("symbol")
    for o in d:
        assert o.side == Side.BUY and o.type == OrderType.MARKET and o.limit_price is None
        assert o.take_profit == pytest.approx(src.loc[o.symbol, "take_profit"])
        assert o.strategy == src.loc[o.symbol, "strategy"]
    md = [o for o in plan.orders if o.layer == Layer.MAXDIFF]
    assert md, "some maxdiff plans listen at the open"
    for o in md:
        row = src.loc[o.symbol]
        assert o.type == OrderType.LIMIT and o.limit_price == round_to_tick(o.limit_price)
        if o.side == Side.BUY:
            assert o.limit_price == round_to_tick(row["pred_low"] * 1.001, Side.BUY)
        else:
            assert row["maxdiff_side"] == "sell" and o.limit_price == round_to_tick(row["pred_high"] * 0.999, Side.SELL)
            assert o.symbol not in {x.symbol for x in d}  # wash-trade rule
    both = {p.symbol for p in plan.maxdiff_plans if p.side == "both" and p.status == "listening"}
    assert all(o.side == Side.BUY for o in md if o.symbol in both)
    s = plan.summary
    assert s.positions == len(d) and s.allocation == pytest.approx(sum(o.est_cost for o in d) / 100_000)
    assert 0.9 < s.allocation <= 0.95 + 1e-9
    assert sum(s.sector_weights.values()) == pytest.approx(s.allocation)
    assert s.objective == pytest.approx(r.targets.objective)
    ranks = [p.rank for p in plan.maxdiff_plans]
    assert ranks == list(range(1, len(ranks) + 1))
    assert {p.status for p in plan.maxdiff_plans} == {"listening", "queued"}


def test_limit_orders_from_params_are_on_the_tick():
    p = params_from_dict({"execution": {"order_type": "limit", "time_in_force": "opg"}})
    for o in build(p).plan.orders:
        assert o.type == OrderType.LIMIT and o.limit_price == round_to_tick(o.limit_price)
        if o.layer == Layer.DIRECTIONAL:
            assert o.time_in_force == TimeInForce.OPG


def test_cash_account_plan():
    plan = build(Params().with_changes({"leverage": {"buying_power_multiple": 1}}), bp=None).plan
    assert plan.account.buying_power == plan.account.equity and plan.account.multiplier == 1
    assert all(o.side == Side.BUY for o in plan.orders)


def test_quarantine_is_reported_not_silent():
    df = opps()
    df.loc[3, "price"] = np.nan
    with pytest.raises(BadInputError, match="row 5: price"):
        build_order_plan(df, Params(), 1e5, None, AS_OF)
    p = params_from_dict({"portfolio": {"quarantine_bad_rows": True}})
    r = build_order_plan(df, p, 1e5, None, AS_OF)
    assert r.quarantined["row"].tolist() == [5]
    assert "S003" not in {o.symbol for o in r.plan.orders}


def order(**kw) -> PlannedOrder:
    """A maxdiff limit buy of 25 AAPL at $178.25; `kw` replaces fields as given (the estimate stays)."""
    base = planned_order("AAPL", 25, 178.25, layer=Layer.MAXDIFF, priority=3, client_order_id="x", cap_tier="mega",
                         weight=0.01)
    return PlannedOrder.model_validate(base.model_dump() | kw)


def test_consolidation_keeps_best_limit():
    out = consolidate([order(), order(client_order_id="y", qty=30, limit_price=178.20, priority=1)])
    assert len(out) == 1 and out[0].qty == 55 and out[0].limit_price == 178.20 and out[0].priority == 1


# ------------------------------------------------------------------ reading the file


def written(tmp_path, mutate) -> str:
    raw = json.loads(build().plan.to_json())
    mutate(raw)
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(raw))
    return str(path)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda r: r.update(schema="wolfkit.orders/9"), "unknown schema"),
        (lambda r: r["orders"][0].update(qty=-3), r"orders\.0\.qty"),
        (lambda r: r["orders"][0].update(est_price=float("nan")), r"orders\.0\.est_price"),
        (lambda r: r["orders"].append(dict(r["orders"][0], client_order_id="other")), "appears twice"),
    ],
)
def test_read_rejects_bad_files(tmp_path, mutate, match):
    with pytest.raises(BadInputError, match=match):
        read_orders(written(tmp_path, mutate))


def test_read_rejects_a_missing_file(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        read_orders(tmp_path / "nope.json")


# ------------------------------------------------------------------ the `wolfkit build` command


def test_cli_build_writes_file_and_exit_codes(tmp_path, root, capsys):
    src = tmp_path / "opps.csv"
    opps().to_csv(src, index=False)
    out = tmp_path / "orders.json"
    args = ["build", "--opportunities", str(src), "--params", str(root / "parameters/default.yaml"),
            "--equity", "100000", "--date", "2026-01-20", "--out", str(out)]
    assert main(args + ["--buying-power", "200000"]) == 0
    plan = read_orders(out)
    assert plan.summary.method == "optimal" and plan.account.multiplier == 2
    assert main(args + ["--method", "greedy"]) == 0
    assert read_orders(out).summary.method == "greedy"
    bad = opps()
    bad.loc[0, "score"] = 130
    bad.to_csv(src, index=False)
    assert main(args) == 2
    assert "row 2: score" in capsys.readouterr().err
    few = opps().iloc[:12].assign(sector="one")
    few.to_csv(src, index=False)
    assert main(args) == 3
    assert "sector cap" in capsys.readouterr().err


def test_a_synthetic_opportunities_file_makes_a_synthetic_plan(tmp_path, root, capsys):
    """A demo scan's file carries `synthetic_prices`; the orders built from it say so too."""
    from wolfkit.data.demo import SYNTHETIC_NOTICE

    src, out = tmp_path / "opps.csv", tmp_path / "orders.json"
    args = ["build", "--opportunities", str(src), "--params", str(root / "parameters/default.yaml"),
            "--equity", "100000", "--date", "2026-01-20", "--out", str(out)]
    opps().to_csv(src, index=False)
    assert main(args) == 0 and read_orders(out).synthetic_prices is False
    assert SYNTHETIC_NOTICE not in capsys.readouterr().out
    opps().assign(synthetic_prices=True).to_csv(src, index=False)
    assert main(args) == 0 and read_orders(out).synthetic_prices is True
    assert SYNTHETIC_NOTICE in capsys.readouterr().out
