"""Explanations of the directional pack: why each name is in or out, why the pack holds another count
than `target_positions`, and which rule makes the rules infeasible, with the best achievable allocation.

Pure. The diagnosis before any solver runs (`diagnose`) names the simple binding rules cheaply; after
the solver found no pack, `infeasible` re-solves with one rule family left out at a time
(`exact.solve_milp(drop=...)`) to name the one that binds. Messages say the rule and the parameter
to change, never a bare solver status.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wolfkit.config import CAP_TIERS, Params
from wolfkit.diversify.candidates import (
    TOL,
    VALUE_TOL,
    Rule,
    SwapRules,
    band_rows,
    group_sums,
    pct,
    top_sum,
)
from wolfkit.diversify.exact import solve_exact, solve_milp
from wolfkit.errors import InfeasibleError


def _rule_names(params: Params) -> dict[str, str]:
    """Each rule family (`exact.RULE_FAMILIES`) as the messages name it, with its parameter."""
    pp = params.portfolio
    return {
        "sector": "sector caps (portfolio.sector_cap / sector_caps)",
        "cap": "market-cap bands (portfolio.market_cap.bands)",
        "count": f"position count {pp.min_positions}–{pp.max_positions}",
        "minimum": "tier-band minimum weights (portfolio.tiers)",
    }


def diagnose(c: pd.DataFrame, params: Params, n_rows: int) -> None:
    """Name the binding rule before the solver runs, with the best allocation it allows.

    Raises `InfeasibleError` when a simple bound already rules every pack out; `n_rows` is the size
    of the opportunities table the candidates came from.
    """
    pp = params.portfolio
    target = pp.target_allocation
    k = pp.max_positions
    n = len(c)
    if n == 0:
        raise InfeasibleError(
            f"no candidates: none of the {n_rows} opportunities has score >= min_score {pp.min_score:g} and passes "
            "the risk rules (risk.*; the excluded table says why each is out); "
            f"the best achievable allocation is 0%, the target is {pct(target)}"
        )
    if n < pp.min_positions:
        best = min(target, top_sum(c["u"].to_numpy(), n))
        raise InfeasibleError(
            f"too few candidates: only {n} with score >= {pp.min_score:g} that pass the risk rules (risk.*; the "
            f"excluded table says why each is out), at least {pp.min_positions} "
            f"positions are required (portfolio.min_positions); {n} names allow at most {pct(best)} allocated, "
            f"the target is {pct(target)}"
        )
    u = c["u"].to_numpy(float)
    sec = c["sector"].to_numpy().astype(str)
    sec_room = {s: min(pp.cap_for(s), top_sum(u[sec == s], k)) for s in np.unique(sec).tolist()}
    sec_best = sum(sec_room.values())
    if sec_best < target - TOL:
        caps = sorted({pp.cap_for(s) for s in sec_room})
        cap_txt = f"a {pct(caps[0])} sector cap" if len(caps) == 1 else "the sector caps"
        raise InfeasibleError(
            f"sector cap: only {len(sec_room)} sectors among {n} candidates: {cap_txt} allows at most "
            f"{pct(sec_best)} allocated, the target is {pct(target)}"
        )
    top = top_sum(u, k)
    if top < target - TOL:
        raise InfeasibleError(
            f"tier bands: the {min(k, n)} largest band maxima among {n} candidates sum to {pct(top)} "
            f"(max_positions {k}); the best achievable allocation is {pct(top)}, the target is {pct(target)}"
        )
    bands = band_rows(params, target)
    tiers = c["cap_tier"].to_numpy()
    tier_room = {t: min(bands[t][1], top_sum(u[tiers == t], k)) for t in CAP_TIERS}
    if sum(tier_room.values()) < target - TOL:
        raise InfeasibleError(
            "market-cap bands: the tier maxima (portfolio.market_cap.bands) and the candidates in each tier "
            f"allow at most {pct(sum(tier_room.values()))} allocated, the target is {pct(target)}"
        )
    for t in CAP_TIERS:
        if bands[t][0] > tier_room[t] + TOL:
            raise InfeasibleError(
                f"market-cap band {t}: needs at least {pct(bands[t][0])} but its "
                f"{int((tiers == t).sum())} candidates can take at most {pct(tier_room[t])}; "
                f"lower portfolio.market_cap.bands.{t} or add {t} candidates"
            )
    floor = float(np.sort(c["lo"].to_numpy())[: pp.min_positions].sum())
    if floor > target + TOL:
        raise InfeasibleError(
            f"tier minimums: the {pp.min_positions} required positions (portfolio.min_positions) need at least "
            f"{pct(floor)} at their band minima, above the target {pct(target)}; lower the band minima "
            "or min_positions, or raise the allocation"
        )


def infeasible(c: pd.DataFrame, params: Params) -> InfeasibleError:
    """After the solver found no pack: which rule family binds, and the best achievable allocation."""
    pp = params.portfolio
    target = pp.target_allocation
    count = (pp.min_positions, pp.max_positions)
    names = _rule_names(params)
    binding = [k for k in names if solve_milp(c, params, count, drop=frozenset({k})) is not None]
    best = solve_milp(c, params, count, maximize_allocation=True)
    best_txt = f"{pct(float(best.sum()))}" if best is not None else "none (no pack meets the minimums)"
    rule = " or ".join(names[k] for k in binding) if binding else "several rules together"
    return InfeasibleError(
        f"infeasible: {rule} cannot hold with the other rules on these {len(c)} candidates; "
        f"the best achievable allocation is {best_txt}, the target is {pct(target)}"
    )


def why_not_count(c: pd.DataFrame, params: Params, k: int) -> str:
    """The rule that rules out every pack of exactly `k` names (for the notes)."""
    target = params.portfolio.target_allocation
    lo, u = c["lo"].to_numpy(float), c["u"].to_numpy(float)
    if len(c) < k:
        return f"only {len(c)} candidates"
    if top_sum(u, k) < target - TOL:
        return f"tier bands: the {k} largest band maxima sum to {pct(top_sum(u, k))}, below the target {pct(target)}"
    if np.sort(lo)[:k].sum() > target + TOL:
        return f"tier bands: the {k} smallest band minima sum to {pct(np.sort(lo)[:k].sum())}, above the target {pct(target)}"
    names = {f: v for f, v in _rule_names(params).items() if f != "count"}
    binding = [v for f, v in names.items() if solve_milp(c, params, (k, k), drop=frozenset({f})) is not None]
    return (" or ".join(binding) if binding else "several rules together") + f" cannot hold with {k} names"


def optimal_notes(c: pd.DataFrame, params: Params, count: int) -> tuple[str, ...]:
    """Why the exact pack holds `count` names instead of `target_positions` (empty when it does not)."""
    k = params.portfolio.target_positions
    if count == k:
        return ()
    return (
        f"{count} positions instead of the target {k} (portfolio.target_positions): no {k}-position pack "
        f"meets every rule ({why_not_count(c, params, k)}); {count} is the nearest count that does",
    )


def greedy_notes(c: pd.DataFrame, params: Params, count: int) -> tuple[str, ...]:
    """Why greedy holds another count than `target_positions`: the fill's limit or the rules'."""
    k = params.portfolio.target_positions
    if count == k:
        return ()
    if solve_exact(c, params, (k, k)) is not None:
        return (
            f"greedy holds {count} positions, not the target {k} (portfolio.target_positions): the score-order "
            f"fill could not reach {k} although a {k}-position pack meeting every rule exists "
            "(--method optimal finds it)",
        )
    return (
        f"{count} positions instead of the target {k} (portfolio.target_positions): no {k}-position pack meets "
        f"every rule ({why_not_count(c, params, k)})",
    )


def greedy_failure(c: pd.DataFrame, params: Params, problems: list[str]) -> InfeasibleError:
    """Greedy's pack breaks `problems`: either no pack meets the rules (say which binds) or greedy's limit."""
    pp = params.portfolio
    if solve_exact(c, params, (pp.min_positions, pp.max_positions)) is None:
        return infeasible(c, params)
    return InfeasibleError(
        f"greedy: the score-order fill ends infeasible here ({'; '.join(problems)}) although a "
        f"pack meeting every rule exists; use --method optimal"
    )


def reasons_out(c: pd.DataFrame, w: np.ndarray, params: Params, basis: str,
                own: dict[int, str] | None = None) -> dict[int, str]:
    """Why each unpicked candidate is out; a name ranked above a pick always for a named rule.

    A name whose coefficient is above some pick's is out because taking the place of any such
    lower-valued pick breaks a rule (`SwapRules`; the exact pack is optimal, and greedy swaps
    such names in when nothing stops them, `GreedyFill.swap_up`): the reason names
    each such rule (`Rule`) with the figures that show it binds. The other names keep the method's own
    reason (`own`: greedy's), else the sector cap they would break, else that the picks rank higher.
    """
    pp = params.portfolio
    sec = c["sector"].to_numpy()
    sec_w = group_sums(sec, w)
    tier_w = group_sums(c["cap_tier"].to_numpy(), w)
    lo = c["lo"].to_numpy(float)
    picks = np.flatnonzero(w > 0)
    count = len(picks)
    why: dict[int, str] = {}
    cc = c["c"].to_numpy(float)
    rules = SwapRules.of(c, params)
    for i in np.flatnonzero(w == 0).tolist():
        lower = picks[cc[picks] < cc[i] - VALUE_TOL]
        named = ranked_out(c, w, i, lower, params, sec_w, tier_w, rules) if len(lower) else ""
        if named:  # greedy's account of its fill first (the room it kept), then the rules that bind now
            mine = own.get(i, "") if own is not None else ""
            why[i] = f"{mine}; {named}" if mine and still_binds(c, w, i, mine, params, sec_w, tier_w) else named
            continue
        s = sec[i]
        if own is not None and i in own:
            why[i] = own[i]
        elif sec_w.get(s, 0.0) + lo[i] > pp.cap_for(s) + TOL:
            why[i] = (f"{Rule.SECTOR_CAP}: {s} already at {pct(sec_w[s])}; its band minimum {pct(lo[i])} "
                      f"would pass the {pct(pp.cap_for(s))} cap")
        else:
            why[i] = f"ranked below every pick: the {count} picks carry a higher {basis} within the rules"
    return why


def still_binds(c: pd.DataFrame, w: np.ndarray, i: int, reason: str, params: Params,
                sec_w: dict[str, float], tier_w: dict[str, float]) -> bool:
    """Whether greedy's reason for name i, given while it filled, still holds for the finished pack:
    a look-ahead reason always (it names no rule), a rule only while the pack is at its limit for i."""
    rule = reason.split(":")[0].removesuffix(" full")
    if rule not in set(Rule):
        return True
    pp = params.portfolio
    lo = float(c["lo"].iat[i])
    if rule == Rule.SECTOR_CAP:
        s = c["sector"].iat[i]
        return sec_w.get(s, 0.0) + lo > pp.cap_for(s) + TOL
    if rule == Rule.CAP_BAND:
        t = c["cap_tier"].iat[i]
        return tier_w.get(t, 0.0) + lo > band_rows(params, pp.target_allocation)[t][1] + TOL
    return float(w.sum()) + lo > pp.target_allocation + TOL


def ranked_out(c: pd.DataFrame, w: np.ndarray, i: int, lower: np.ndarray, params: Params,
               sec_w: dict[str, float], tier_w: dict[str, float], rules: SwapRules | None = None) -> str:
    """The reason of a name valued above the picks `lower`: each rule that stops it taking one's place,
    as "<rule>: <figures>" parts joined by "; " (empty when none does: only greedy under the raw
    objective, which fills by score, leaves such a name). Each rule's figures are those of the
    lowest-valued pick it blocks, with the number of picks it blocks."""
    rules = rules if rules is not None else SwapRules.of(c, params)
    js = lower[np.argsort(c["c"].to_numpy(float)[lower], kind="stable")]  # lowest-valued first
    hits = []  # (first pick blocked, check order, rule, check, picks blocked)
    for order, (rule, check, mask) in enumerate(rules.blocks(w, i, js, sec_w, tier_w)):
        if mask.any():
            hits.append((int(np.argmax(mask)), order, rule, check, int(mask.sum())))
    found: dict[Rule, tuple[str, int]] = {}
    for first, _, rule, check, n in sorted(hits, key=lambda h: (h[0], h[1])):
        text, m = found.get(rule, (rules.text(check, w, i, int(js[first]), sec_w, tier_w), 0))
        found[rule] = (text, m + n)
    return "; ".join(f"{rule}: {text}" + (f" (blocks {n} lower-valued picks)" if n > 1 else "")
                     for rule, (text, n) in found.items())


def reasons_in(picked: pd.DataFrame) -> list[str]:
    """Why each picked name holds its weight: its score tier, weight and band (and the cap that lowered it)."""
    rules = picked["cap_rule"] if "cap_rule" in picked else pd.Series("", index=picked.index)
    return [
        f"tier {t}: {pct(x)} (band {pct(lo)}–{pct(u)}" + (f", {rule} cap" if rule else "") + ")"
        for t, x, lo, u, rule in zip(picked["tier"], picked["weight"], picked["lo"], picked["u"], rules)
    ]
