"""Diversification: candidates to target weights under every rule of the directional pack.

Rules (all from `params.portfolio`): a candidate has score >= `min_score`; its score tier gives its
weight band (90+ → 10–12 %, …); weights are fractions of account EQUITY and sum exactly to the target
allocation T = `portfolio.target_allocation` (1 − `cash_reserve`); each sector holds at most its cap
(fractions of equity, with per-sector overrides); each market-cap tier holds between min×T and max×T
of its band (the bands are shares of the directional ALLOCATION, so `cap_weights / allocation` is what
the bands bound); the pack has `min_positions`..`max_positions` names, aiming at `target_positions`.

Two methods report the same objective, Σ weight × coefficient (`candidates.objective_coefficient`):
under `portfolio.objective: calibrated` the walk-forward calibrated return of the score minus
`risk_aversion` × its calibrated daily volatility (`wolfkit.calibration`), and the candidates rank by
it in both methods; under `raw` (or before the calibration has enough history, said in `notes`)
`expected_return` when every candidate has one, else `score`, and the candidates rank by score.
A name ranked above a pick is left out only for a named rule (`candidates.Rule`): taking the place of
any lower-ranked pick would break it (`explain.reasons_out`, shown in `Targets.excluded`).

- ``optimal``: the exact optimum with exactly `target_positions` names (the count is a rule); only
  when no such pack exists does the count widen to the nearest feasible one in
  `min_positions`..`max_positions` (ties: the larger), said in `Targets.notes` with the binding rule.
  Solved by an exact enumeration without the sector / market-cap rows (accepted when it happens to
  meet them) or else an exact MILP (scipy's HiGHS): selection binaries z, weights lo·z <= w <= hi·z.
- ``greedy``: the score-order fill, count-aware: by score, take each name at its full size (band max)
  while the caps allow, keeping room for the band minima of the names still needed to reach
  `target_positions` and for every market-cap tier's band minimum, so the tail shrinks instead of the
  count. Its result satisfies every other rule or it raises `InfeasibleError`; a count short of the
  target is said in `Targets.notes`.

Guarantee: at equal counts optimal >= greedy (optimal is the exact optimum at its count).

`weight_rule` bounds a name inside its band: ``score`` (the whole band) or ``kelly`` (leverage-aware
Kelly from `sizing` caps the name's weight for both methods). Infeasible rules give an
`InfeasibleError` naming the binding rule and the best achievable allocation, never a bare solver
status. The market-cap bands are the exception unless `market_cap.strict`: a band the candidates
cannot meet is missed by the least the candidates allow and reported, the other rules stay hard (so
the count still beats a band: a pack of `target_positions` missing a band is preferred to one of
another count meeting it).

One module per responsibility, imported one way (candidates → exact → explain, bands; candidates → greedy):

- `limits`: the risk and liquidity limits (`params.risk`): floors on price and dollar volume, caps on
  weight from volatility and dollar volume, the rules that could not apply (`Targets.rules_skipped`);
- `candidates`: eligibility, score tiers and bands, market-cap band rows, the rule check, pruning;
- `exact`: the MILP, the exact relaxation and the count search;
- `greedy`: `GreedyFill`, the score-order fill in named phases;
- `explain`: reasons in and out, count notes, the infeasibility diagnosis;
- `bands`: market-cap bands as preferences (`market_cap.strict: false`, the default): when the
  candidates cannot meet a band, the least total shortfall (an exact first solve), the build on the
  bands widened by it, and per band what was missed and why (`Targets.band_misses`, `notes`).

Internal entry points (documented, for tests and benchmarks; the pipeline calls only `build_targets`):
`candidates.candidate_table(opps, params)` → (table, excluded, basis); `candidates.violations(c, w,
params)`; `candidates.prune_dominated(c, params, k)`; `exact.solve_milp(c, params, count)` (the
reference MILP, no pruning); `exact.solve_relaxed(c, params, count)`; `exact.solve_exact(c, params,
count, prune)`; `exact.counts_by_preference(params)`; `exact.solve_count(c, params)`;
`greedy.GreedyFill(c, params).run()`; `bands.least_shortfall(c, params)`, `bands.widened(params,
shortfall)`, `bands.missed(...)`, `bands.band_table(...)` (the report's table).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from wolfkit.config import CAP_TIERS, Params
from wolfkit.diversify import bands, explain, limits
from wolfkit.diversify.candidates import (
    TOL,
    Basis,
    candidate_table,
    objective_note,
    swap_up,
    tier_labels,
    violations,
)
from wolfkit.diversify.exact import solve_count
from wolfkit.diversify.greedy import GreedyFill
from wolfkit.errors import BadInputError, InfeasibleError

if TYPE_CHECKING:
    from wolfkit.calibration import Calibration

__all__ = ["Method", "Targets", "build_targets", "tier_labels"]


class Method(StrEnum):
    OPTIMAL = "optimal"
    GREEDY = "greedy"


@dataclass(frozen=True)
class Targets:
    """The directional pack's target weights (fractions of equity) and why each name is in or out.

    `weights`: symbol, sector, cap_tier, score, expected_return, tier, weight, reason (by weight desc).
    `excluded`: symbol, reason. `objective` = Σ weight × coefficient (`basis` says which).
    `notes`: why the pack does not hold exactly `target_positions` names, naming the binding rule
    (empty when it does), and one line per market-cap band missed. `band_misses`: those bands, with
    the share reached and why (`bands.BandMiss`; empty when every band is met). `rules_skipped`: risk
    rules that are on but could not apply to these opportunities (`limits.skipped`), with the fix.
    """

    weights: pd.DataFrame
    excluded: pd.DataFrame
    method: str
    objective: float
    allocation: float
    sector_weights: dict[str, float]
    cap_weights: dict[str, float]
    basis: str
    notes: tuple[str, ...] = ()
    band_misses: tuple[bands.BandMiss, ...] = ()
    rules_skipped: tuple[str, ...] = ()
    calibration: Calibration | None = None


def build_targets(opps: pd.DataFrame, params: Params, method: str | None = None,
                  calibration: Calibration | None = None, equity: float | None = None) -> Targets:
    """Target weights (fractions of equity) for the directional pack, by `method` (default: parameters).

    `calibration`: the session's walk-forward calibration (`wolfkit.calibration`), used when
    `portfolio.objective` is calibrated; without one (or before it is ready) the raw objective is used
    and `notes` says so.

    `opps` is a validated opportunities table (`validate_opportunities(...).valid`).
    Raises `InfeasibleError` (exit 3) naming the binding rule and the best achievable allocation.
    Market-cap bands the candidates cannot meet are preferences unless `market_cap.strict` (`bands`):
    the pack comes as close as it can and `Targets.band_misses` / `notes` say which band and why.
    The risk floors and caps (`params.risk`, `limits`) apply; `equity` (USD) is what the liquidity cap
    on weight divides by (None: only the packer's cap on shares applies).
    """
    try:
        m = Method(method or params.portfolio.method)
    except ValueError:
        raise BadInputError(f"method {method!r}: use optimal or greedy") from None
    c, excluded, basis = candidate_table(opps, params, equity, calibration)
    skipped = limits.skipped(opps, params, equity)
    note = objective_note(params, calibration)
    extra = (note,) if note else ()
    try:
        t = _build(c, excluded, basis, params, m, len(opps))
        return replace(t, notes=(*t.notes, *extra), calibration=calibration, rules_skipped=skipped)
    except InfeasibleError:
        if params.portfolio.market_cap.strict or not len(c):
            raise
        shortfall = bands.least_shortfall(c, params)
        if shortfall is None or all(b + a <= TOL for b, a in shortfall.values()):
            raise  # the bands are not what stops it
    t = _build(c, excluded, basis, bands.widened(params, shortfall), m, len(opps))
    misses = bands.missed(c, params, t.cap_weights, t.allocation)
    return replace(t, band_misses=misses, notes=(*t.notes, *(b.note() for b in misses), *extra),
                   calibration=calibration, rules_skipped=skipped)


def _build(c: pd.DataFrame, excluded: pd.DataFrame, basis: Basis, params: Params, m: Method, n_rows: int) -> Targets:
    """The pack under `params` with every rule hard (the candidate table from `candidate_table`)."""
    explain.diagnose(c, params, n_rows)
    if m is Method.OPTIMAL:
        found = solve_count(c, params)
        if found is None:
            raise explain.infeasible(c, params)
        w, count = found
        if basis is Basis.CALIBRATED:  # what the solver's tolerances cannot tell apart (coefficients 1e-9 apart)
            w = swap_up(c, w, params)[0]
        notes = explain.optimal_notes(c, params, count)
        why = explain.reasons_out(c, w, params, basis)
    else:
        w, own = GreedyFill(c, params).run()
        problems = violations(c, w, params)
        if problems:
            raise explain.greedy_failure(c, params, problems)
        notes = explain.greedy_notes(c, params, int((w > 0).sum()))
        why = explain.reasons_out(c, w, params, basis, own)
    sel = w > 0
    picked = c.loc[sel].copy()
    picked["weight"] = w[sel]
    picked["reason"] = explain.reasons_in(picked)
    picked["size"] = np.round(w[sel], 9)  # the order must not hang on the solver's last bits (1e-17)
    weights = (
        picked.sort_values(["size", "score", "symbol"], ascending=[False, False, True])
        [["symbol", "sector", "cap_tier", "score", "expected_return", "tier", "weight", "reason"]]
        .reset_index(drop=True)
    )
    out = pd.DataFrame({"symbol": c.loc[~sel, "symbol"].to_numpy(), "reason": [why[i] for i in np.flatnonzero(~sel).tolist()]})
    excluded = pd.concat([out, excluded], ignore_index=True)
    sector_w = weights.groupby("sector")["weight"].sum().sort_values(ascending=False)
    cap_w = weights.groupby("cap_tier")["weight"].sum()
    return Targets(
        weights=weights,
        excluded=excluded,
        method=str(m),
        objective=float((w * c["c"].to_numpy()).sum()),
        allocation=float(w.sum()),
        sector_weights={str(k): float(v) for k, v in sector_w.items()},
        cap_weights={t: float(cap_w.get(t, 0.0)) for t in CAP_TIERS if t in cap_w},
        basis=str(basis),
        notes=notes,
    )
