"""The exact path (relaxation, dominance pruning, MILP) gives the targets of the reference formulation
(the unpruned MILP over every candidate), on real sessions and random instances; the solver proves
its optimum relative to the objective, whatever the objective's scale."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint

from wolfkit.config import Params, load_params, params_from_dict
from wolfkit.diversify import Targets, build_targets, exact
from wolfkit.diversify.candidates import candidate_table, prune_dominated
from wolfkit.errors import InfeasibleError
from wolfkit.milp import solve
from wolfkit.opportunities import validate_opportunities

ROOT = Path(__file__).resolve().parents[1]


def reference(opps: pd.DataFrame, p: Params) -> Targets:
    """`build_targets` with the exact step done by the reference formulation: the MILP on every row."""
    fast = exact.solve_exact
    exact.solve_exact = lambda c, params, count, prune=True: exact.solve_milp(c, params, count)  # type: ignore[assignment]
    try:
        return build_targets(opps, p, "optimal")
    finally:
        exact.solve_exact = fast  # type: ignore[assignment]


def assert_same(a: Targets, b: Targets) -> None:
    assert a.weights["symbol"].tolist() == b.weights["symbol"].tolist()
    np.testing.assert_allclose(a.weights["weight"], b.weights["weight"], rtol=0, atol=1e-9)
    assert a.weights["reason"].tolist() == b.weights["reason"].tolist()
    pd.testing.assert_frame_equal(a.excluded, b.excluded)
    assert a.notes == b.notes
    assert a.objective == pytest.approx(b.objective, rel=1e-9, abs=0)


@pytest.fixture(scope="module")
def real_sessions(shared_data: Path) -> list[pd.DataFrame]:
    """Opportunities of 30 real sessions of 2015 (every 8th), scanned from the S&P 500 file."""
    import exchange_calendars as xc

    from wolfkit.data import get_provider
    from wolfkit.scan import run_scan

    p = load_params(ROOT / "parameters" / "sp500.yaml").with_changes({"scan": {"workers": 0}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the file's quarantined rows, reported elsewhere
        provider = get_provider(p)
    days = xc.get_calendar("XNYS").sessions_in_range("2015-01-01", "2015-12-31")[::8][:30]
    return [validate_opportunities(run_scan(p, d.date(), provider).opportunities, p, "scan").valid for d in days]


@pytest.mark.slow
def test_real_sessions_same_targets_as_the_reference_formulation(real_sessions, capfd):
    p = load_params(ROOT / "parameters" / "sp500.yaml")
    assert len(real_sessions) == 30
    pruned = 0
    for opps in real_sessions:
        c, _, _ = candidate_table(opps, p)
        pruned += int((~prune_dominated(c, p, p.portfolio.target_positions)).sum())
        assert_same(build_targets(opps, p, "optimal"), reference(opps, p))
    assert pruned > 0  # the reduction really ran on these sessions
    assert "tmpSolver" not in capfd.readouterr().out  # HiGHS's stray debug line (session 18 here) stays out


MIXES = [
    {"mega": [0.0, 0.5]},
    {"mega": [0.1, 0.5], "large": [0.1, 0.6], "mid": [0.05, 0.4], "small": [0.0, 0.3], "micro": [0.0, 0.15]},
    {t: [0.0, 1.0] for t in ("mega", "large", "mid", "small", "micro")},
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(12, 90),
    sectors=st.integers(2, 11),
    seed=st.integers(0, 100_000),
    cap=st.sampled_from([0.2, 0.3, 0.5, 1.0]),
    bands=st.sampled_from(MIXES),
    kelly=st.booleans(),
)
def test_random_instances_same_targets_as_the_reference_formulation(n, sectors, seed, cap, bands, kelly):
    # continuous expected returns: one optimal pack (no ties for the two formulations to break differently)
    r = np.random.default_rng(seed)
    df = pd.DataFrame({
        "symbol": [f"S{i:03d}" for i in range(n)],
        "sector": [f"sec{k}" for k in r.integers(0, sectors, n)],
        "market_cap": 10 ** r.uniform(8.3, 12.6, n),
        "price": r.uniform(2, 900, n).round(2),
        "score": r.uniform(68, 100, n),
        "expected_return": r.uniform(-0.002, 0.004, n),
        "return_std": r.uniform(0.005, 0.05, n),
    })
    changes: dict = {"portfolio": {"sector_cap": cap, "market_cap": {"bands": bands}}}
    if kelly:
        changes["sizing"] = {"weight_rule": "kelly"}
    p = params_from_dict(changes)
    opps = validate_opportunities(df, p, "t").valid
    try:
        fast = build_targets(opps, p, "optimal")
    except InfeasibleError as e:
        with pytest.raises(InfeasibleError) as ref:
            reference(opps, p)
        assert str(ref.value) == str(e)
        return
    assert_same(fast, reference(opps, p))


def test_the_optimum_is_proven_relative_to_the_objective_not_in_absolute_terms():
    # a knapsack whose values are ~1e-7: HiGHS' default absolute gap (1e-6) would accept any packing
    r = np.random.default_rng(3)
    n = 40
    v, wt = r.uniform(1, 2, n), r.uniform(1, 3, n)
    cons = [LinearConstraint(wt[None, :], 0, 0.37 * wt.sum())]
    big = solve(-v, cons, np.ones(n), Bounds(0, 1), what="test")
    tiny = solve(-v * 1e-7, cons, np.ones(n), Bounds(0, 1), what="test")
    assert big is not None and tiny is not None
    assert tiny.fun == pytest.approx(big.fun * 1e-7, rel=1e-9)
    np.testing.assert_array_equal(np.round(tiny.x), np.round(big.x))
