"""The exact solver: scipy's HiGHS MILP with a time limit and an honest answer.

Every exact step (diversification, maxdiff knapsack, integer shares) goes through `solve`. A morning
job must never hang on a pathological parameter set, and a result the solver did not prove optimal
must never be reported as "optimal" — so hitting the limit is an error naming what was being solved
and what to do, and infeasibility comes back as None for the caller to explain in its own terms.

"Proven" means the relative gap `gap` and nothing looser: HiGHS also stops at an ABSOLUTE gap
(`mip_abs_gap`, 1e-6 by default), which on the diversification objective (Σ weight × expected return,
about 2e-3) is a relative gap of 5e-4 — the solver could stop at a pack that is not the optimum. So the
objective is scaled to a largest coefficient of 1 and the absolute gap is switched off.

HiGHS 1.12 prints a stray debug line ("HighsMipSolverData::transformNewIntegerFeasibleSolution
tmpSolver.run();", ERGO-Code/HiGHS#2783) straight to the process's stdout on some models, whatever
its output options; the call runs with file descriptor 1 pointed at /dev/null so it never lands in a
command's output.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Sequence

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, milp

from wolfkit.errors import WolfkitError

TIME_LIMIT_S = 30.0
_INFEASIBLE = 2


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """File descriptor 1 on /dev/null for the duration (HiGHS writes to it directly, past Python)."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no fd 1 to silence (a detached process): run as is
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class SolverTimeout(WolfkitError):
    """HiGHS did not prove optimality within the time limit."""


def solve(
    c: np.ndarray,
    constraints: Sequence[LinearConstraint],
    integrality: np.ndarray,
    bounds: Bounds,
    *,
    what: str,
    gap: float = 1e-9,
    abs_gap: float = 0.0,
    time_limit: float = TIME_LIMIT_S,
) -> OptimizeResult | None:
    """Minimise c·x; the proven optimum (relative gap `gap`, absolute gap `abs_gap` in the units of c·x, e.g.
    half a cent for a problem in USD), None when infeasible, SolverTimeout past `time_limit`."""
    scale = float(np.abs(c).max()) if len(c) else 0.0
    scale = scale if scale > 0 else 1.0
    with warnings.catch_warnings(), _quiet_stdout():
        # mip_abs_gap is a HiGHS option scipy passes on verbatim, warning that it does not know it
        warnings.filterwarnings("ignore", message="Unrecognized options detected", category=RuntimeWarning)
        options: dict[str, Any] = {"mip_rel_gap": gap, "mip_abs_gap": abs_gap / scale, "time_limit": time_limit}
        res = milp(c / scale, constraints=list(constraints), integrality=integrality, bounds=bounds,
                   options=options)  # type: ignore[arg-type]  # scipy-stubs list only the options scipy knows
    if res.status == 0:
        res.fun = float(c @ res.x)
        return res
    if res.status == _INFEASIBLE:
        return None
    if res.status == 1:
        raise SolverTimeout(
            f"{what}: the exact solver did not prove an optimum within {time_limit:g} s; "
            "use --method greedy, or loosen the constraints (fewer candidates, wider bands)"
        )
    raise WolfkitError(f"{what}: the exact solver failed ({res.message})")
