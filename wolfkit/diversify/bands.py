"""Market-cap bands as preferences: when the candidates cannot meet a band, the pack that comes closest,
and per band what was missed and why.

With `portfolio.market_cap.strict: false` (the default) a band the candidates cannot meet does not stop
the morning. How the closest pack is found, lexicographically:

1. `least_shortfall`: an exact MILP under every other rule (tier bands, sector caps, the position
   count: `target_positions`, else the nearest count with a pack) minimises the total shortfall
   Σ_t (below_t + above_t) in fractions of equity, where below_t is how far cap tier t stays under its
   band minimum and above_t how far it goes over its maximum.
2. `widened`: each missed band is widened by its shortfall in that solution, and the ordinary build
   (either method, every explanation) runs on the widened bands: the best pack by the objective among
   those missing the bands by no more than that.

A band met by the candidates is never touched, so where every band can be met the pack is exactly the
strict one. `missed` says, per band, the share reached and why no more was possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint
from scipy.sparse import csr_array, hstack, vstack

from wolfkit.config import CAP_TIERS, Params
from wolfkit.diversify.candidates import TOL, band_rows, pct, top_sum
from wolfkit.diversify.exact import counts_by_preference, pack_model
from wolfkit.milp import solve

MARGIN = 1e-9
"""Widened bands get this much more room (share of the allocation) so the rebuild is not infeasible
by a rounding error of the first solve."""


class Miss(StrEnum):
    """Which side of its band a cap tier ended on."""

    BELOW = "below its minimum"
    ABOVE = "above its maximum"


@dataclass(frozen=True)
class BandMiss:
    """A market-cap band the pack could not meet: the tier, its band (shares of the allocation), the
    share it holds, which side it missed, and why no closer pack exists."""

    tier: str
    band: tuple[float, float]
    share: float
    miss: Miss
    why: str

    def note(self) -> str:
        """The line for `Targets.notes` (the orders file, the console, the report)."""
        lo, hi = self.band
        bound = pct(lo) if self.miss is Miss.BELOW else pct(hi)
        return (f"market-cap band {self.tier}: {pct(self.share)} of the allocation, {self.miss.value} {bound}: "
                f"{self.why}; the pack comes as close as the candidates allow (portfolio.market_cap.bands.{self.tier}; "
                "portfolio.market_cap.strict: true stops instead)")


def least_shortfall(c: pd.DataFrame, params: Params) -> dict[str, tuple[float, float]] | None:
    """Per cap tier (below, above) of a pack with the least total shortfall from the bands, under every
    other rule; None when no pack meets the other rules at any count in min_positions..max_positions."""
    pp = params.portfolio
    for m in (pp.target_positions, *counts_by_preference(params)):
        found = _shortfall_at(c, params, m)
        if found is not None:
            return found
    return None


def _shortfall_at(c: pd.DataFrame, params: Params, count: int) -> dict[str, tuple[float, float]] | None:
    """The shortfall MILP with exactly `count` names: x = [w, z, below per tier, above per tier]."""
    target = params.portfolio.target_allocation
    n = len(c)
    if n < count:
        return None
    hard = pack_model(c, params, (count, count), drop=frozenset({"cap"}))
    bands = band_rows(params, target)
    tiers = c["cap_tier"].to_numpy()
    k = len(bands)
    rows, cols, vals = [], [], []
    for r, t in enumerate(bands):
        pos = np.flatnonzero(tiers == t)
        rows += [r] * (len(pos) + 2)
        cols += [*pos.tolist(), 2 * n + r, 2 * n + k + r]
        vals += [1.0] * len(pos) + [1.0, -1.0]  # Σ w + below - above within [min, max]
    soft = csr_array((vals, (rows, cols)), shape=(k, 2 * n + 2 * k))
    a = vstack([hstack([hard.a, csr_array((hard.a.shape[0], 2 * k))]), soft]).tocsr()
    lb = np.r_[hard.lb, [b[0] for b in bands.values()]]
    ub = np.r_[hard.ub, [b[1] for b in bands.values()]]
    res = solve(
        np.r_[np.zeros(2 * n), np.ones(2 * k)],
        [LinearConstraint(a, lb, ub)],
        np.r_[np.zeros(n), np.ones(n), np.zeros(2 * k)],
        Bounds(np.zeros(2 * n + 2 * k), np.r_[hard.upper, np.full(2 * k, target)]),
        what="market-cap band shortfall",
    )
    if res is None:
        return None
    s = res.x[2 * n:]
    return {t: (float(s[r]), float(s[k + r])) for r, t in enumerate(bands)}


def widened(params: Params, shortfall: dict[str, tuple[float, float]]) -> Params:
    """`params` with each missed band widened by its shortfall (shares of the allocation); others as given."""
    target = params.portfolio.target_allocation
    bands = dict(params.portfolio.market_cap.bands)
    for t, (below, above) in shortfall.items():
        lo, hi = bands[t]
        if below > TOL:
            lo = max(0.0, lo - below / target - MARGIN)
        if above > TOL:
            hi = min(1.0, hi + above / target + MARGIN)
        bands[t] = (lo, hi)
    return params.with_changes({"portfolio": {"market_cap": {"bands": {t: list(b) for t, b in bands.items()}}}})


def missed(c: pd.DataFrame, params: Params, cap_weights: dict[str, float], allocation: float) -> tuple[BandMiss, ...]:
    """Each band (of the ORIGINAL `params`) the pack with `cap_weights` misses, with the reason."""
    pp = params.portfolio
    target = pp.target_allocation
    k = pp.max_positions
    bands = band_rows(params, target)
    u = c["u"].to_numpy(float)
    tiers = c["cap_tier"].to_numpy()
    room = {t: min(bands[t][1], top_sum(u[tiers == t], k)) for t in CAP_TIERS}
    out = []
    for t in CAP_TIERS:
        held = cap_weights.get(t, 0.0)
        lo, hi = bands[t]
        share = held / allocation if allocation > 0 else 0.0
        if held < lo - TOL:
            n_t = int((tiers == t).sum())
            if room[t] < lo - TOL:
                why = f"its {n_t} candidate{'s' if n_t != 1 else ''} can take at most {pct(room[t])} of equity"
            else:
                why = "the other rules (sector caps, tier bands, the position count, the other market-cap bands) allow no more"
            out.append(BandMiss(t, pp.market_cap.bands[t], share, Miss.BELOW, why))
        elif held > hi + TOL:
            total = sum(room.values())
            if total < target - TOL:
                why = (f"the tier maxima and the candidates in each tier allow at most {pct(total)} allocated, "
                       f"the target is {pct(target)}")
            else:
                why = "the other rules (sector caps, tier bands, the position count, the other market-cap bands) need it"
            out.append(BandMiss(t, pp.market_cap.bands[t], share, Miss.ABOVE, why))
    return tuple(out)


def band_table(params: Params, cap_weights: dict[str, float], allocation: float,
               misses: tuple[BandMiss, ...]) -> pd.DataFrame:
    """Every market-cap band against the pack (tier, min, max, share, met, why): the report's table."""
    why = {m.tier: m.why for m in misses}
    rows = []
    for t in CAP_TIERS:
        lo, hi = params.portfolio.market_cap.bands[t]
        share = cap_weights.get(t, 0.0) / allocation if allocation > 0 else 0.0
        rows.append((t, lo, hi, share, t not in why, why.get(t, "")))
    return pd.DataFrame(rows, columns=["tier", "min", "max", "share", "met", "why"])
