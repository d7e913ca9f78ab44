"""Parameters are frozen once loaded; changes make a new, re-validated set; the values derived from them
(the target allocation, the account from equity and buying power) have one definition that `wolfkit
build`, the pre-market notebook's builder, the tuning panel, the backtest and the replay all share."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel, ValidationError

from wolfkit import notebooks
from wolfkit.backtest.engine import build_day
from wolfkit.cli import main
from wolfkit.config import AccountKind, Params, load_params, params_from_dict
from wolfkit.diversify import build_targets
from wolfkit.domain import Layer
from wolfkit.errors import BadInputError
from wolfkit.opportunities import load_opportunities, validate_opportunities
from wolfkit.orders import OrderPlan, read_orders
from wolfkit.replay import new_broker
from wolfkit.scan import ScanResult

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 1, 20)  # a Tuesday, an NYSE session
EQUITY = 100_000.0
CASH = {"leverage": {"buying_power_multiple": 1.0}}


def _models(m: BaseModel, path: str = "params") -> list[tuple[str, BaseModel]]:
    """`m` and every parameter model nested in it (sections, tier bands, time shares)."""
    out = [(path, m)]
    for name in type(m).model_fields:
        v = getattr(m, name)
        for i, x in enumerate(v if isinstance(v, list) else [v]):
            if isinstance(x, BaseModel):
                out += _models(x, f"{path}.{name}" + (f"[{i}]" if isinstance(v, list) else ""))
    return out


def test_every_parameter_model_refuses_assignment():
    models = _models(load_params(ROOT / "parameters/demo.yaml"))
    assert {p for p, _ in models} >= {"params.portfolio", "params.portfolio.tiers[0]", "params.portfolio.market_cap",
                                      "params.leverage.maxdiff_time_shares[2]", "params.backtest"}
    for path, m in models:
        field = next(iter(type(m).model_fields))
        with pytest.raises(ValidationError, match="frozen"):
            setattr(m, field, getattr(m, field))
        assert type(m).model_config.get("frozen") is True, path


def test_with_changes_makes_a_new_validated_set_and_leaves_the_old_one():
    p = Params()
    q = p.with_changes({"portfolio": {"sector_cap": 0.25}, "execution": {"max_concurrency": 2}})
    assert (q.portfolio.sector_cap, q.execution.max_concurrency) == (0.25, 2)
    assert (p.portfolio.sector_cap, p.execution.max_concurrency) == (0.30, 4)
    # siblings keep their values; only the named keys differ
    assert q.portfolio.model_dump(exclude={"sector_cap"}) == p.portfolio.model_dump(exclude={"sector_cap"})
    assert q.digest() != p.digest() and p.with_changes({}) == p
    # values are parsed as from a file: a time given as text becomes a time
    t = p.with_changes({"leverage": {"maxdiff_time_shares": [{"start": "09:30", "share": 0.5}]}})
    assert t.leverage.maxdiff_share_at(t.leverage.maxdiff_time_shares[0].start) == 0.5


@pytest.mark.parametrize(("changes", "message"), [
    ({"portfolio": {"cash_reserve": 0.9}}, r"portfolio.*exceeds the target allocation 0\.10"),
    ({"portfolio": {"sector_cap": 1.5}}, r"portfolio\.sector_cap \(given 1\.5\)"),
    ({"portfolio": {"sectr_cap": 0.2}}, r"portfolio\.sectr_cap: unknown key"),
    ({"leverage": {"directional_max": 2.0}}, r"directional_max 2\.0 > total_max 1\.5"),
])
def test_with_changes_validates_like_a_file(changes, message):
    with pytest.raises(BadInputError, match=message) as e:
        Params().with_changes(changes, "my change")
    assert str(e.value).startswith("my change: invalid parameters")


def test_a_moved_key_names_its_new_home():
    moved = r"old\.yaml: invalid parameters:\n  backtest\.buying_power_multiple: moved to leverage\.buying_power_multiple"
    with pytest.raises(BadInputError, match=moved):
        params_from_dict({"backtest": {"buying_power_multiple": 1.0}}, "old.yaml")


def test_target_allocation_is_one_minus_the_reserve_and_the_pack_sums_to_it():
    assert Params().portfolio.target_allocation == pytest.approx(0.95)
    p = Params().with_changes({"portfolio": {"cash_reserve": 0.10}})
    assert p.portfolio.target_allocation == pytest.approx(0.90)
    t = build_targets(validate_opportunities(_opportunities(), p, "t").valid, p, "greedy")
    assert t.allocation == pytest.approx(0.90) and t.weights["weight"].sum() == pytest.approx(0.90)


def test_the_target_allocation_has_one_definition():
    """`1 - cash_reserve` is written once, in `PortfolioParams.target_allocation`."""
    pattern = re.compile(r"1(\.0)?\s*-\s*[\w.]*\.cash_reserve")  # a computation, not the words in a message
    found = [f"{f.relative_to(ROOT)}:{i}" for f in sorted((ROOT / "wolfkit").rglob("*.py"))
             for i, line in enumerate(f.read_text().splitlines(), 1)
             if pattern.search(line) and not line.lstrip().startswith("#")]
    assert found == ["wolfkit/config.py:" + str(_line_of("return 1 - self.cash_reserve"))]


def _line_of(text: str) -> int:
    lines = (ROOT / "wolfkit/config.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_account_rule():
    margin, cash = Params(), Params().with_changes(CASH)
    a = margin.account(EQUITY)  # nothing given: leverage.buying_power_multiple (2) x equity
    assert (a.kind, a.buying_power, a.multiplier) == (AccountKind.MARGIN, 200_000.0, 2.0)
    assert (a.directional_bucket, a.total_bucket) == (pytest.approx(130_000), pytest.approx(150_000))
    c = cash.account(EQUITY)
    assert (c.kind, c.buying_power, c.multiplier, c.margin) == (AccountKind.CASH, EQUITY, 1.0, False)
    assert c.directional_bucket == c.total_bucket == pytest.approx(95_000)
    # a buying power that is given always wins over the parameters
    assert cash.account(EQUITY, 150_000).kind is AccountKind.MARGIN
    assert margin.account(EQUITY, EQUITY).kind is AccountKind.CASH
    assert margin.account(EQUITY, 50_000).directional_bucket == 50_000  # a cash account capped at its buying power
    assert margin.account(EQUITY, 140_000).total_bucket == 140_000


@pytest.mark.parametrize(("equity", "bp"), [(0.0, None), (float("nan"), None), (-5.0, 10.0), (EQUITY, 0.0),
                                            (EQUITY, float("inf"))])
def test_account_refuses_impossible_inputs(equity, bp):
    with pytest.raises(BadInputError, match="must be a positive number of USD"):
        Params().account(equity, bp)


# ---- the same inputs give the same plan in every command ----------------------------------------


def _opportunities(n: int = 50, seed: int = 1) -> pd.DataFrame:
    """Test input (not market data): candidates with every maxdiff side, so a cash account drops sells."""
    r = np.random.default_rng(seed)
    price = r.uniform(5, 600, n).round(2)
    return pd.DataFrame({
        "symbol": [f"S{i:03d}" for i in range(n)],
        "sector": [f"sec{k}" for k in r.integers(0, 11, n)],
        "market_cap": 10 ** r.uniform(9, 12.3, n),
        "price": price,
        "score": r.uniform(60, 100, n).round(1),
        "strategy": "simple",
        "take_profit": np.nan,
        "stop_loss": np.nan,
        "pred_high": (price * 1.02).round(2),
        "pred_low": (price * 0.98).round(2),
        "maxdiff_avg_return": r.uniform(0.0005, 0.006, n).round(6),
        "maxdiff_side": r.choice(["buy", "sell", "both"], n),
    })


def _essence(plan: OrderPlan) -> dict:
    """The plan without what names the run (run id, client ids, creation time)."""
    d = plan.model_dump(mode="json", exclude={"run_id", "created_at"})
    for o in d["orders"]:
        del o["client_order_id"]
    return d


@pytest.mark.parametrize("changes", [{}, CASH], ids=["margin-by-default", "cash-by-parameters"])
def test_build_premarket_tune_backtest_and_replay_agree_without_a_buying_power(tmp_path, changes):
    # the buying-power rule is the subject; the tuning panel fits no calibration yet, so compare raw packs
    params = Params().with_changes({**changes, "portfolio": {"objective": "raw"}})
    pfile, ofile, out = tmp_path / "p.yaml", tmp_path / "opp.csv", tmp_path / "orders.json"
    pfile.write_text(params.to_yaml())
    _opportunities().to_csv(ofile, index=False)
    opps = load_opportunities(ofile)

    # `wolfkit build` without --buying-power
    assert main(["build", "--opportunities", str(ofile), "--params", str(pfile), "--equity", str(EQUITY),
                 "--date", AS_OF.isoformat(), "--out", str(out)]) == 0
    cli = read_orders(out)
    # the pre-market notebook's builder call and the tuning panel, with the notebooks' default buying_power 0
    ctx = notebooks.RunContext(kind="premarket", session=AS_OF, params_path=pfile, params=load_params(pfile),
                               run_id="premarket-test", suffix="", outputs_dir=tmp_path)
    scan = ScanResult(opps, pd.DataFrame(columns=["symbol", "reason"]), AS_OF, AS_OF, False, [], "test", 0.0)
    premarket = notebooks.build(ctx, scan, EQUITY, 0.0).plan
    panel = notebooks.tuning_panel(ctx, scan, EQUITY, 0.0, save_dir=str(tmp_path / "saved"))
    assert panel.error is None

    assert _essence(cli) == _essence(premarket) == _essence(panel.build.plan)
    account = params.account(EQUITY)
    assert cli.account.buying_power == account.buying_power and cli.account.multiplier == account.multiplier
    sells = {m.symbol for m in cli.maxdiff_plans if m.side == "sell"}
    assert bool(sells) is account.margin  # a cash account never plans a short sale

    # the backtest's morning and the replay's simulated account read the parameters the same way
    valid = validate_opportunities(opps, params, "t").valid
    orders, packing = build_day(valid, build_targets(valid, params), params, EQUITY, params.account(EQUITY).buying_power)
    assert packing.margin is account.margin and packing.total_bucket == pytest.approx(account.total_bucket)
    planned = {(o.symbol, o.layer, o.qty) for o in cli.orders}
    assert {(o.symbol, o.layer, o.qty) for o in orders} == planned
    # margin: the maxdiff layer has room at the open; cash: only the directional rounding leftover
    assert (Layer.MAXDIFF in {o.layer for o in cli.orders}) is account.margin
    assert new_broker(EQUITY, params).multiplier == cli.account.multiplier
