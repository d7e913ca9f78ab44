"""Greedy: the rank-order fill of the directional pack, count-aware, as `GreedyFill` with named phases.

The rule a trader applies by hand: best first, each name at its full size while the caps allow. "Best"
is the candidate table's rank: the score under the raw objective, the calibrated objective under
`portfolio.objective: calibrated` (the measure the exact pack maximises).
Made count-aware so the tail shrinks instead of the count: a name is taken only when the room left
after it still covers the names needed to reach `target_positions` and every market-cap tier's band
minimum. Pure; its result is checked against every rule by the caller (`candidates.violations`), and
`Targets.notes` says when it holds another count than the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wolfkit.config import Params
from wolfkit.diversify.candidates import (
    TOL,
    band_rows,
    pct,
    swap_up,
    violations,
)

EPS = 1e-12
"""Slack on a band minimum fitting a room: the rooms are sums of the same floats."""


@dataclass(frozen=True)
class Reserve:
    """The look-ahead's answer: what the names still to come must hold (weight `kept`, `count` names,
    per sector and cap tier), the cap tiers whose unmet minimum it includes (`minima`), and `short`:
    a cap tier whose minimum no longer fits the slots or the allocation left (else None), and
    `short_of` which of the two ("positions" or "allocation")."""

    kept: float
    count: int
    per_sec: np.ndarray
    per_tier: np.ndarray
    minima: tuple[str, ...]
    short: str | None
    short_of: str = ""


@dataclass
class _Hold:
    """The room the look-ahead holds while it counts: per sector and cap tier, which names, the weight
    kept for them, how many, and the least weight the name being placed and they need together."""

    per_sec: np.ndarray
    per_tier: np.ndarray
    used: np.ndarray
    need: float
    kept: float = 0.0
    count: int = 0


class GreedyFill:
    """The count-aware score-order fill over one candidate table (`candidates.candidate_table`).

    Phases, in order (`run`):

    1. `fill` — walking the candidates by score with `slots` positions still to fill toward
       `target_positions`, a name is taken only when, after it, the allocation, sector and market-cap
       room left still cover the cheapest band minima of `slots - 1` later names that fit those rooms
       (`reserve`); its weight is min(band max, caps, what is left after that reserve), so the tail
       shrinks instead of the count. The look-ahead first keeps room (names and weight) for every
       market-cap tier whose band minimum is not met yet (`reserve_for_tier_minimums`), so when the
       slots left are just enough for those tiers only their names (best score first) are taken.
    2. `top_up` — short of the allocation, picks grow to their band maxima (tiers still under their
       minimum first).
    3. `add_names` — still short, more names join up to `max_positions` (owed tiers first).
    4. `shrink_tail` — short of the target count, the lowest-ranked picks shrink toward their minima
       to admit the next names by score that fit their sector and market-cap room (undone when a
       market-cap minimum would break).
    5. `swap_up` — under the calibrated objective, a name left out whose coefficient is above a pick's
       takes the lowest-valued such pick's place (at its weight) when no rule stops it
       (`candidates.SwapRules`), until none can: so a higher-valued name is out only for a named
       rule, as in the exact pack.
    6. `explain_rest` — every name left out gets its reason.

    State: the weights `w`, the running `total` and `count`, and the weight used per sector and cap
    tier; `why` holds the reason of each name left out (by row of the table).
    """

    def __init__(self, c: pd.DataFrame, params: Params) -> None:
        pp = params.portfolio
        self.c, self.params = c, params
        self.target = pp.target_allocation
        self.k = pp.target_positions
        self.bands = band_rows(params, self.target)
        self.n = n = len(c)
        self.w = np.zeros(n)
        self.why: dict[int, str] = {}
        self.total = 0.0
        self.count = 0
        self.sec, self.tier = c["sector"].to_numpy(), c["cap_tier"].to_numpy()
        self.lo, self.u = c["lo"].to_numpy(float), c["u"].to_numpy(float)
        self.sec_names: np.ndarray
        self.sec_code: np.ndarray
        self.tier_names: np.ndarray
        self.tier_code: np.ndarray
        self.sec_names, self.sec_code = np.unique(self.sec, return_inverse=True) if n else (np.array([]), np.zeros(0, int))
        self.tier_names, self.tier_code = np.unique(self.tier, return_inverse=True) if n else (np.array([]), np.zeros(0, int))
        self.sec_cap = np.array([pp.cap_for(s) for s in self.sec_names])
        self.tier_cap = np.array([self.bands[t][1] for t in self.tier_names])
        self.tier_min = np.array([self.bands[t][0] for t in self.tier_names])
        self.share_min = {t: pp.market_cap.bands[t][0] for t in self.tier_names}
        self.sec_used, self.tier_used = np.zeros(len(self.sec_names)), np.zeros(len(self.tier_names))
        self.by_min = np.argsort(self.lo, kind="stable")  # cheapest band minimum first, by score among equals
        self.by_size = np.argsort(-self.u, kind="stable")  # largest full size first, by score among equals
        self.calibrated = "calibrated_return" in c

    def run(self) -> tuple[np.ndarray, dict[int, str]]:
        """Weights per candidate row (fractions of equity) and why each row left out is out."""
        self.fill()
        self.top_up()
        self.add_names()
        self.shrink_tail()
        self.swap_up()
        self.explain_rest()
        return self.w, self.why

    # ------------------------------------------------------------ state

    def rooms(self, i: int) -> tuple[float, float, float]:
        """Room left for name i: in the allocation, its sector and its cap tier."""
        s, t = self.sec_code[i], self.tier_code[i]
        return self.target - self.total, self.sec_cap[s] - self.sec_used[s], self.tier_cap[t] - self.tier_used[t]

    def owed(self, q: int) -> float:
        """Weight (of equity) cap tier q still needs to reach its minimum."""
        return max(self.tier_min[q] - self.tier_used[q], 0.0)

    def add(self, i: int, amount: float) -> None:
        """Move `amount` of weight onto name i (negative: off it), keeping every running total."""
        if self.w[i] == 0:
            self.count += 1
        self.w[i] += amount
        self.total += amount
        self.sec_used[self.sec_code[i]] += amount
        self.tier_used[self.tier_code[i]] += amount

    def refuse(self, i: int) -> str | None:
        """Why name i cannot join even at its band minimum (sector, market-cap band, allocation), else None."""
        total, sector, band = self.rooms(i)
        lo = self.lo[i]
        if sector < lo - EPS:
            s = self.sec[i]
            return (f"sector cap: {s} already at {pct(self.sec_used[self.sec_code[i]])}; its band minimum "
                    f"{pct(lo)} would pass the {pct(self.params.portfolio.cap_for(s))} cap")
        if band < lo - EPS:
            t = self.tier[i]
            return (f"market-cap band: {t} already at {pct(self.tier_used[self.tier_code[i]])} of equity; its band "
                    f"minimum {pct(lo)} would pass the {pct(self.bands[t][1])} maximum")
        if total < lo - EPS:
            return f"allocation full: {pct(total)} left, band minimum {pct(lo)}"
        return None

    # ------------------------------------------------------------ the look-ahead

    def reserve(self, i: int, slots: int, take: bool = True) -> Reserve:
        """Room kept after taking i at its band minimum (`take`; else before i, i still available)
        for `slots` more names: first each cap tier's unmet minimum, then the cheapest band minima of
        the remaining slots; all within the sector and market-cap rooms."""
        lo = self.lo
        hold = _Hold(np.zeros(len(self.sec_names)), np.zeros(len(self.tier_names)), np.zeros(self.n, dtype=bool),
                     need=lo[i] if take else 0.0)
        if take:
            hold.per_sec[self.sec_code[i]] += lo[i]
            hold.per_tier[self.tier_code[i]] += lo[i]
        free = (np.arange(self.n) > i if take else np.arange(self.n) >= i) & (self.w == 0)
        minima, short, short_of = self.reserve_for_tier_minimums(i, slots, take, free, hold)
        self.reserve_for_slots(slots, free, hold)
        if take:
            hold.per_sec[self.sec_code[i]] -= lo[i]
            hold.per_tier[self.tier_code[i]] -= lo[i]
        if short is None and minima and hold.need > self.target - self.total + TOL:
            short, short_of = minima[0], "allocation"
        return Reserve(hold.kept, hold.count, hold.per_sec, hold.per_tier, tuple(minima), short, short_of)

    def reserve_for_tier_minimums(
        self, i: int, slots: int, take: bool, free: np.ndarray, hold: _Hold
    ) -> tuple[list[str], str | None, str]:
        """Hold, for each cap tier under its minimum, the fewest `free` names of the tier (largest
        first) that can carry what its picks cannot still grow into; i itself carries its own tier's
        deficit when taken. Returns the tiers held for, and the first tier short of names ("positions")."""
        lo, u, w = self.lo, self.u, self.w
        minima: list[str] = []
        short, short_of = None, ""
        for t in range(len(self.tier_names)):
            deficit = self.tier_min[t] - self.tier_used[t]
            if deficit <= TOL:
                continue
            own = take and self.tier_code[i] == t
            grow = float((u - w)[(w > 0) & (self.tier_code == t)].sum()) + (u[i] if own else 0.0)
            cover, lo_new = 0.0, 0.0
            for j in self.by_size[free[self.by_size] & (self.tier_code[self.by_size] == t)]:
                if cover >= deficit - grow - TOL:
                    break
                if self._fits(j, hold):
                    self._hold(j, hold)
                    cover += u[j]
                    lo_new += lo[j]
                    hold.count += 1
            if short is None and (cover < deficit - grow - TOL or hold.count > slots):
                short, short_of = str(self.tier_names[t]), "positions"
            minima.append(str(self.tier_names[t]))
            hold.kept += lo_new if own else max(deficit, lo_new)
            hold.need += max(deficit - lo[i], lo_new) if own else max(deficit, lo_new)
        return minima, short, short_of

    def reserve_for_slots(self, slots: int, free: np.ndarray, hold: _Hold) -> None:
        """Hold the cheapest band minima of the `free` names not held yet, up to `slots` names in all."""
        if slots <= hold.count:
            return
        for j in self.by_min[free[self.by_min] & ~hold.used[self.by_min]]:
            if hold.count >= slots:
                break
            if self._fits(j, hold):
                self._hold(j, hold)
                hold.kept += self.lo[j]
                hold.need += self.lo[j]
                hold.count += 1

    def _fits(self, j: int, hold: _Hold) -> bool:
        sj, tj = self.sec_code[j], self.tier_code[j]
        return (self.sec_cap[sj] - self.sec_used[sj] - hold.per_sec[sj] >= self.lo[j] - EPS
                and self.tier_cap[tj] - self.tier_used[tj] - hold.per_tier[tj] >= self.lo[j] - EPS)

    def _hold(self, j: int, hold: _Hold) -> None:
        hold.per_sec[self.sec_code[j]] += self.lo[j]
        hold.per_tier[self.tier_code[j]] += self.lo[j]
        hold.used[j] = True

    # ------------------------------------------------------------ phases

    def fill(self) -> None:
        """Phase 1: the walk by score, full size while the caps allow, room kept for the count and the tier minima."""
        for i in range(self.n):
            reason = self._place(i)
            if reason is not None:
                self.why[i] = reason

    def _place(self, i: int) -> str | None:
        """Take name i at the most the rules and the look-ahead allow, or say why not."""
        k, lo = self.k, self.lo[i]
        if self.count >= k:
            return f"not needed: {k} positions already"
        no = self.refuse(i)
        if no:
            return no
        slots = k - self.count - 1
        r = self.reserve(i, slots)
        if r.short is not None and self.reserve(i, slots + 1, take=False).short is None:
            q = int(np.flatnonzero(self.tier_names == r.short)[0])
            kept = f"kept room for the {r.short}-cap minimum {pct(self.share_min[r.short])} of the allocation"
            debt = f"{pct(self.owed(q))} of equity still owed to {r.short} names"
            if r.short_of == "positions":
                left_txt = "the last position" if slots == 0 else f"the {slots + 1} positions left"
                return f"{kept}: {debt} needs {left_txt}"
            return (f"{kept}: {debt} and the band minima of {slots} more positions leave too "
                    f"little of the {pct(self.target - self.total)} left for this name's {pct(lo)}")
        total_room, sector_room, band_room = self.rooms(i)
        left = min(total_room - r.kept, sector_room - r.per_sec[self.sec_code[i]],
                   band_room - r.per_tier[self.tier_code[i]])
        if left < lo - EPS:
            minima = "".join(f" and the {t}-cap minimum {pct(self.share_min[t])}" for t in r.minima)
            return (
                f"kept room for {k} positions: {pct(r.kept)} reserved for {r.count} more at their band minima"
                f"{minima} leaves {pct(max(left, 0.0))}; a {self.c['tier'].iat[i]} name needs ≥{pct(lo)}"
            )
        self.add(i, min(self.u[i], left))
        return None

    def _owed_last(self, j: int) -> bool:
        """Sort key: names of cap tiers still under their minimum first."""
        return self.owed(self.tier_code[j]) <= TOL

    def top_up(self) -> None:
        """Phase 2: short of the allocation, picks grow toward their band maxima, owed tiers first."""
        for i in sorted(np.flatnonzero(self.w > 0).tolist(), key=self._owed_last):
            extra = min(self.u[i] - self.w[i], *self.rooms(i))
            if extra > 0:
                self.add(i, extra)

    def add_names(self) -> None:
        """Phase 3: still short, more names join up to `max_positions`, owed tiers first."""
        for i in sorted(range(self.n), key=self._owed_last):
            if self.total >= self.target - TOL or self.count >= self.params.portfolio.max_positions:
                break
            if self.w[i] == 0 and self.refuse(i) is None:
                self.add(i, min(self.u[i], *self.rooms(i)))
                self.why.pop(i, None)

    def shrink_tail(self) -> None:
        """Phase 4: short of the target count, the lowest-ranked picks shrink to admit the next names by rank."""
        w, lo = self.w, self.lo
        rank_order = list(range(self.n))  # the table's rank order
        for i in rank_order:
            if self.count >= self.k:
                break
            if w[i] > 0 or min(self.rooms(i)[1:]) < lo[i] - EPS:
                continue
            picks = [j for j in rank_order[::-1] if w[j] > lo[j]]
            need = lo[i] - self.rooms(i)[0]
            if sum(w[j] - lo[j] for j in picks) < need - EPS:
                break
            before = (w.copy(), self.sec_used.copy(), self.tier_used.copy(), self.total, self.count)
            for j in picks:
                cut = min(w[j] - lo[j], need)
                if cut > 0:
                    self.add(j, -cut)
                    need -= cut
            self.add(i, lo[i])
            if violations(self.c, w, self.params):  # a market-cap minimum broke: undo
                w[:], self.sec_used[:], self.tier_used[:] = before[:3]
                self.total, self.count = before[3], before[4]
            else:
                self.why.pop(i, None)

    def swap_up(self) -> None:
        """Phase 5: a left-out name valued above a pick takes the lowest-valued such pick's place when no rule
        stops it (`candidates.swap_up`; the calibrated objective only: under the raw one greedy is the
        score-order fill)."""
        if not self.calibrated:
            return
        w, swaps = swap_up(self.c, self.w, self.params)
        for i, j in swaps:
            self.why.pop(i, None)
            self.why[j] = "swapped out for a higher-valued name"
        self.w[:] = w

    def explain_rest(self) -> None:
        """Phase 5: a name left out without a reason was not needed: the allocation is reached."""
        for i in np.flatnonzero(self.w == 0).tolist():
            self.why.setdefault(i, f"not needed: allocation {pct(self.target)} reached")
