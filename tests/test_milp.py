"""The exact-solver wrapper: proven optimum, None when infeasible, a clear error at the time limit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint

from wolfkit.milp import SolverTimeout, solve


def test_optimum_and_infeasible():
    # maximise x + y with x + y <= 3.5, integers in [0, 3]
    res = solve(np.array([-1.0, -1.0]), [LinearConstraint(np.ones((1, 2)), -np.inf, 3.5)], np.ones(2),
                Bounds(0, 3), what="toy")
    assert res is not None and round(-res.fun) == 3
    assert solve(np.ones(2), [LinearConstraint(np.ones((1, 2)), 7, np.inf)], np.ones(2), Bounds(0, 3),
                 what="toy") is None


def test_time_limit_is_an_error_naming_the_step():
    # a hard equality knapsack (no solution, hard to prove) with a tiny limit
    rng = np.random.default_rng(0)
    n = 60
    w = rng.integers(10_000, 20_000, n).astype(float) * 2
    with pytest.raises(SolverTimeout, match="diversification: the exact solver did not prove an optimum"):
        solve(-rng.random(n), [LinearConstraint(w[None, :], w.sum() / 2 + 1, w.sum() / 2 + 1)], np.ones(n),
              Bounds(0, 1), what="diversification", time_limit=0.001)
