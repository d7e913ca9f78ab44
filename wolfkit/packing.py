"""Two-layer packing: the directional pack takes its bucket first, maxdiff plans fill the room after.

Buckets (multiples of equity E) come from `Params.account`, the one rule for every command. No buying
power given means `leverage.buying_power_multiple`·E (2, a margin account, by default). A MARGIN account
(buying power > equity): directional bucket min(`directional_max`·E, buying power), total bucket
min(`total_max`·E, buying power). A CASH account (buying power <= equity): both buckets are the target
allocation (1 − `cash_reserve`)·E, capped at the buying power — no margin, the reserve stays cash, and
there is no shorting (sell-only maxdiff plans are not eligible).

Directional layer: target weights stay fractions of EQUITY on both account types — the pack buys
allocation·E (95 % by default) in whole shares (`sizing.allocate_shares`), it is not scaled up to the
1.3x bucket. The rest of the directional bucket is room for the intraday engine's directional adds.

Maxdiff layer: its budget is the room up to the total bucket left by the directional pack's cost
(room = total bucket − directional cost); at time `at` it may use `leverage.maxdiff_share_at(at)` of
that room (20 % at the open by default — which keeps the directional bucket's room free early in the
day): `Params.maxdiff_budget`, the same rule the intraday engine applies all day. Eligible plans (all of pred_high, pred_low,
maxdiff_avg_return > 0 and >= `maxdiff.min_avg_return`, maxdiff_side; at most
`max_positions_per_symbol` positions per symbol across the layers, a directional holding counting
one) are ranked by avg_return. Each plan's size is the dynamic rule, capacity / active plans
(active = min(`maxdiff_max_active`, eligible)), or leverage-aware Kelly from the plan's own statistics
(edge `maxdiff_avg_return`, variance `maxdiff_return_std`², never the directional strategy's); its limit price is the start
of its ramp (buy and both: pred_low × buy_ramp[0]; sell: pred_high × sell_ramp[0]).

Knapsack, same objective for both methods: maximise Σ avg_return × qty × limit (expected profit in USD)
subject to Σ qty × limit <= capacity, 1 <= qty <= floor(size / limit) for a listening plan, at most
`maxdiff_max_active` listening, and (`risk.maxdiff_in_cap_bands`) per market-cap tier Σ qty × limit <=
the tier's room: its band maximum (a share of the directional allocation, in USD of equity) less the
directional pack's cost in the tier — maxdiff fills add to the tier's exposure. ``optimal`` solves it
exactly (MILP, HiGHS) up to `SHARES_EXACT` shares a plan, and beyond within one share per plan a room
cuts of the whole-share optimum, never below greedy (`_knapsack_milp`); ``greedy`` takes plans by rank at full size and
shrinks the tail to the room left. Plans left out are ``queued`` with their rank and the room they
need; they rotate in as room frees up during the day.

Risk limits (`params.risk`, see `diversify.limits`): a maxdiff plan on a name under a floor (price,
dollar volume) is not eligible; every order, directional or maxdiff, buys at most `max_adv_share` of
the name's average daily dollar volume (`adv_usd`) — the directional weight was already bounded by it
at the equity the targets were built for, and the shares are capped here at the equity sized for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import time

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult

from wolfkit.config import Params
from wolfkit.diversify import Method, Targets
from wolfkit.diversify.candidates import band_rows
from wolfkit.diversify.limits import below_floors
from wolfkit.domain import PlanStatus, Side, round_to_tick
from wolfkit.errors import BadInputError, InfeasibleError
from wolfkit.milp import solve
from wolfkit.sizing import allocate_shares, kelly_fraction

MAXDIFF_COLUMNS = ["pred_high", "pred_low", "maxdiff_avg_return", "maxdiff_side"]


@dataclass(frozen=True)
class Packing:
    """Both layers, sized in whole shares.

    `directional`: symbol, sector, cap_tier, score, weight, price, qty, cost (USD).
    `maxdiff`: symbol, side, high_target, low_target, avg_return, limit_price, rank, status, qty,
    cost (USD, 0 when queued), room_needed (USD of its full size). `maxdiff_excluded`: symbol, reason.
    """

    directional: pd.DataFrame
    maxdiff: pd.DataFrame
    maxdiff_excluded: pd.DataFrame
    method: str
    margin: bool
    directional_bucket: float
    total_bucket: float
    maxdiff_budget: float
    maxdiff_capacity: float
    maxdiff_objective: float
    leftover_cash: float


def adv_share_cap(opps: pd.DataFrame, symbols: pd.Series, prices: np.ndarray, params: Params) -> np.ndarray:
    """The most shares an order may buy per symbol: `risk.max_adv_share` of its dollar volume at `prices`
    (inf when the rule is off or the opportunities carry no `adv_usd`)."""
    share = params.risk.max_adv_share
    if share is None or "adv_usd" not in opps or not opps["adv_usd"].notna().any():
        return np.full(len(symbols), np.inf)
    adv = opps.set_index("symbol")["adv_usd"].reindex(symbols).to_numpy(float)
    return np.floor(np.nan_to_num(share * adv, nan=0.0) / prices + 1e-9)


def _directional(targets: Targets, opps: pd.DataFrame, equity: float, bucket: float,
                 params: Params) -> tuple[pd.DataFrame, float]:
    w = targets.weights
    budget = targets.allocation * equity
    if budget > bucket * (1 + 1e-9):
        raise InfeasibleError(
            f"buying power: the directional pack needs ${budget:,.0f} ({targets.allocation:.1%} of equity) "
            f"but the directional bucket holds ${bucket:,.0f}; lower the allocation or add buying power"
        )
    price = opps.set_index("symbol")["price"]
    d = w[["symbol", "sector", "cap_tier", "score", "weight"]].copy()
    d["price"] = price.loc[d["symbol"]].to_numpy(float)
    shares = allocate_shares(
        {s: x / targets.allocation for s, x in zip(d["symbol"], d["weight"])} if len(d) else {},
        dict(zip(d["symbol"], d["price"])),
        budget,
    ) if len(d) else {}
    d["qty"] = np.minimum([shares[s] for s in d["symbol"]], adv_share_cap(opps, d["symbol"], d["price"].to_numpy(float),
                                                                            params)).astype(int)
    d["cost"] = d["qty"] * d["price"]
    return d.reset_index(drop=True), float(budget - d["cost"].sum())


def _eligible(opps: pd.DataFrame, held: set[str], params: Params, margin: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    cols = [c for c in MAXDIFF_COLUMNS if c in opps]
    if not params.maxdiff.enabled or len(cols) < len(MAXDIFF_COLUMNS):
        return pd.DataFrame(), pd.DataFrame(columns=["symbol", "reason"])
    m = opps.dropna(subset=MAXDIFF_COLUMNS).copy()
    reasons: list[tuple[str, str]] = []
    keep = np.ones(len(m), dtype=bool)
    floor = below_floors(m, params).to_numpy()
    for k, (sym, r, side) in enumerate(zip(m["symbol"], m["maxdiff_avg_return"], m["maxdiff_side"])):
        if floor[k]:
            reasons.append((sym, str(floor[k])))
        elif r < params.maxdiff.min_avg_return or r <= 0:
            reasons.append((sym, f"avg_return {r:.4f} below maxdiff.min_avg_return {params.maxdiff.min_avg_return:g} (or not positive)"))
        elif (1 if sym in held else 0) + 1 > params.leverage.max_positions_per_symbol:
            reasons.append((sym, f"per-symbol limit: {params.leverage.max_positions_per_symbol} position(s) per symbol across layers"))
        elif side == "sell" and not margin:
            reasons.append((sym, "cash account: a sell-only plan would be a short sale"))
        else:
            continue
        keep[k] = False
    m = m.loc[keep].copy()
    buy_side = m["maxdiff_side"].isin(["buy", "both"]).to_numpy()
    b0, s0 = params.maxdiff.buy_ramp[0], params.maxdiff.sell_ramp[0]
    m["limit_price"] = [
        round_to_tick(lo * b0, Side.BUY) if b else round_to_tick(hi * s0, Side.SELL)
        for b, lo, hi in zip(buy_side, m["pred_low"], m["pred_high"])
    ]
    m = m.sort_values(["maxdiff_avg_return", "symbol"], ascending=[False, True]).reset_index(drop=True)
    m["rank"] = np.arange(1, len(m) + 1)
    return m, pd.DataFrame(reasons, columns=["symbol", "reason"])


def _maxdiff_std(plans: pd.DataFrame) -> np.ndarray:
    """Each plan's own return std (the maxdiff trade's, never the directional strategy's `return_std`)."""
    sd = plans["maxdiff_return_std"] if "maxdiff_return_std" in plans else pd.Series(np.nan, index=plans.index)
    bad = plans.loc[~(sd > 0), "symbol"].tolist()
    if bad:
        raise BadInputError(
            f"opportunities: sizing.maxdiff_rule kelly sizes a maxdiff plan from the variance of its own returns "
            f"and needs a positive maxdiff_return_std on every maxdiff plan; missing or not positive for "
            f"{', '.join(map(str, bad[:5]))}{' …' if len(bad) > 5 else ''} ({len(bad)}). Scan again (the scan "
            "writes it), add the column, or use maxdiff_rule: dynamic"
        )
    return sd.to_numpy(float)


@dataclass(frozen=True)
class TierRooms:
    """Per maxdiff plan its market-cap tier (`code`, an index into `room`), and per tier the USD the
    maxdiff layer may still add to it (`room`: band maximum less the directional cost there)."""

    code: np.ndarray
    room: np.ndarray

    def fits(self, q: np.ndarray, price: np.ndarray) -> bool:
        return bool((np.bincount(self.code, weights=q * price, minlength=len(self.room)) <= self.room + 1e-6).all())


def tier_rooms(plans: pd.DataFrame, directional: pd.DataFrame, params: Params, equity: float) -> TierRooms | None:
    """The maxdiff layer's room in each market-cap tier (`risk.maxdiff_in_cap_bands`; None when off)."""
    if not params.risk.maxdiff_in_cap_bands:
        return None
    bands = band_rows(params, params.portfolio.target_allocation)
    names = list(bands)
    held = directional.groupby("cap_tier")["cost"].sum() if len(directional) else pd.Series(dtype=float)
    room = np.array([max(0.0, bands[t][1] * equity - float(held.get(t, 0.0))) for t in names])
    tier = plans["cap_tier"] if "cap_tier" in plans else plans["market_cap"].map(params.portfolio.market_cap.tier_of)
    return TierRooms(np.array([names.index(str(t)) for t in tier], dtype=int), room)


def _knapsack_exact(value: np.ndarray, price: np.ndarray, qmax: np.ndarray, capacity: float, max_active: int,
                    tiers: TierRooms | None = None) -> np.ndarray:
    """max Σ value_i q_i price_i  s.t. Σ q_i price_i <= capacity, y_i <= q_i <= qmax_i y_i, Σ y <= max_active
    (and each market-cap tier's Σ q_i price_i <= its room, when `tiers`).

    Only plans that can hold one whole share earn (`_can_listen`), each at most value_i times its full
    size capped by its room (the capacity, its tier's), and at most `max_active` listen: the
    `max_active` best such capped values bound the optimum. When those plans are not capped and fit
    every room together at full size they are the optimum (always so under the dynamic rule without
    tier rooms: each full size is capacity / active). Else the best split of the count over the tiers
    (`_by_tier_counts`), and only when that structure does not hold, the MILP (`_knapsack_milp`).
    """
    n = len(value)
    if n == 0 or capacity <= 0:
        return np.zeros(n)
    ok, room = _can_listen(value, price, qmax, capacity, tiers)
    full = qmax * price
    earns = np.where(ok, value * np.minimum(full, room), -np.inf)
    top = np.argsort(-earns, kind="stable")[:max(max_active, 0)]
    top = top[earns[top] > 0]
    q = np.zeros(n)
    q[top] = qmax[top]
    if ((full[top] <= room[top]).all() and float(full[top].sum()) <= capacity
            and (tiers is None or tiers.fits(q, price))):
        return q
    by_tier = _by_tier_counts(value, price, qmax, capacity, max_active, tiers)
    return by_tier if by_tier is not None else _knapsack_milp(value, price, qmax, capacity, max_active, tiers)


def _by_tier_counts(value: np.ndarray, price: np.ndarray, qmax: np.ndarray, capacity: float, max_active: int,
                    tiers: TierRooms | None) -> np.ndarray | None:
    """The whole-share optimum as a number of plans per market-cap tier (None: not this structure).

    When any `max_active` plans fit the capacity together (the dynamic rule: each full size is at most
    capacity / active), only the count ties the tiers: the optimum is the best split of `max_active`
    over the tiers of each tier's own optimum for its count. Per tier and count k that is at most the k
    best full-size values, and at most the tier's room filled by value per dollar; it is exactly the
    former when those k plans fit the room. The best split by these values (bounds where not exact) is
    found; each tier count in it known only by a bound is then solved exactly (a whole-share MILP over
    that tier's plans, `_undominated` for that count), and the split found again, until the best split
    holds exact values only: it is then the optimum. (A tier with more than `SHARES_EXACT` shares a plan
    is left to `_knapsack_milp`, as its whole-share MILP is.)
    """
    if tiers is None:
        return None
    ok, _ = _can_listen(value, price, qmax, capacity, tiers)
    full = qmax * price
    if float(np.sort(full[ok])[::-1][:max_active].sum()) > capacity + 1e-6:
        return None
    ks = np.arange(max_active + 1)
    top, best, fits, bound = [], [], [], []
    for t, room in enumerate(tiers.room):
        every = np.flatnonzero(ok & (tiers.code == t))
        idx = every[np.lexsort((every, -(value * full)[every]))][:max_active]  # best full-size value first
        upto = np.minimum(ks, len(idx))
        b = np.r_[0.0, np.cumsum((value * full)[idx])][upto]
        f = (np.r_[0.0, np.cumsum(full[idx])] <= room + 1e-6)[upto]
        order = every[np.argsort(-value[every], kind="stable")]  # the room filled by value per dollar
        took = np.minimum(full[order], np.maximum(room - np.r_[0.0, np.cumsum(full[order])[:-1]], 0.0))
        top.append(idx)
        best.append(b)
        fits.append(f)
        bound.append(np.where(f, b, np.minimum(b, float(value[order] @ took))))
    solved: dict[tuple[int, int], np.ndarray] = {}  # (tier, count) -> that tier's optimal shares
    for _ in range(4 * len(tiers.room)):
        _, split = _split_counts(bound, max_active)
        open_ = [(t, k) for t, k in enumerate(split) if not fits[t][k] and (t, k) not in solved]
        if not open_:
            q = np.zeros(len(value))
            for t, k in enumerate(split):
                if (t, k) in solved:
                    q += solved[(t, k)]
                else:
                    q[top[t][:k]] = qmax[top[t][:k]]
            return q if float(q @ price) <= capacity + 1e-6 and tiers.fits(q, price) else None
        for t, k in open_:
            members = ok & (tiers.code == t)
            if qmax[members].max() > SHARES_EXACT:  # whole shares by the thousand: the MILP path's top-up
                return None
            solved[(t, k)] = _tier_optimum(value, price, qmax, members, float(tiers.room[t]), k)
            bound[t] = bound[t].copy()
            bound[t][k] = float(value * price @ solved[(t, k)])
    return None


def _tier_optimum(value: np.ndarray, price: np.ndarray, qmax: np.ndarray, members: np.ndarray, room: float,
                  count: int) -> np.ndarray:
    """One tier's whole-share optimum: at most `count` of its plans (`members`) within its `room`."""
    q = np.zeros(len(value))
    idx = np.flatnonzero(members)
    if not len(idx) or count <= 0:
        return q
    zero = np.zeros(len(idx), dtype=int)
    keep = _undominated(zero, _merits(value[idx], price[idx], qmax[idx], room, None, integer_shares=True), count)
    idx = idx[keep]
    res = _knapsack_program(value[idx], price[idx], qmax[idx], room, count, None, integer_shares=True, exact=True)
    if res is not None:
        q[idx] = _fit(np.floor(res.x[:len(idx)] + 1e-6), price[idx], room, None)
    return q


def _split_counts(values: list[np.ndarray], most: int) -> tuple[float, list[int]]:
    """The best Σ_t values[t][k_t] over counts with Σ k_t <= `most` (values[t][k] for k = 0..most; -inf:
    not allowed), and the counts (the smallest k of each tier among equals: deterministic)."""
    ks = np.arange(most + 1)
    gap = ks[:, None] - ks[None, :]  # [c, k]: the count left for the tiers before
    best = np.zeros(most + 1)
    picks = []
    for v in values:
        total = np.where(gap >= 0, best[np.clip(gap, 0, most)] + v[None, :], -np.inf)
        picks.append(np.argmax(total, axis=1))
        best = total[ks, picks[-1]]
    split, c = [], most
    for k in reversed(picks):
        split.append(int(k[c]))
        c -= int(k[c])
    return float(best[most]), split[::-1]


def _can_listen(value: np.ndarray, price: np.ndarray, qmax: np.ndarray, capacity: float,
                tiers: TierRooms | None) -> tuple[np.ndarray, np.ndarray]:
    """Which plans can earn with one whole share (a positive value, a share within every room), and each
    plan's room: the capacity, or its tier's room when smaller."""
    room = np.minimum(tiers.room[tiers.code], capacity) if tiers is not None else np.full(len(value), capacity)
    return (value > 0) & (qmax >= 1) & (price <= room), room


SHARES_EXACT = 1_000
"""Above this many shares in a plan the whole-share MILP is not attempted (see `_knapsack_milp`)."""
HALF_CENT = 0.005
"""How close (USD of expected return) a whole-share packing is proven to the optimum."""


def _knapsack_milp(value: np.ndarray, price: np.ndarray, qmax: np.ndarray, capacity: float, max_active: int,
                   tiers: TierRooms | None = None) -> np.ndarray:
    """The same knapsack as a MILP over x = [q, y] (HiGHS), for when the best full-size plans do not fit.

    Only the plans that can hold a whole share take part. First with the share counts q continuous (only
    the selections y integer: fast) over the plans no others dominate (`_undominated`); its optimum
    bounds the whole-share one from above, so when its shares rounded down earn as much (to half a cent) they
    are the proven optimum. Else, with at most `SHARES_EXACT` shares a plan, the whole-share MILP over
    the plans no others dominate with whole shares (exact, to half a cent). Else — thousands of shares
    a plan, where HiGHS cannot close a gap of cents in its time limit once market-cap tier rooms bind — the rounded-down shares topped up share by share, or the
    greedy fill when it earns more: within one share per plan a room cuts of the whole-share optimum,
    and never below greedy. Deterministic: the choice depends on the inputs only, never on time.
    """
    out = np.zeros(len(value))
    ones = _can_listen(value, price, qmax, capacity, tiers)[0]
    if not ones.any():
        return out
    code = tiers.code if tiers is not None else np.zeros(len(value), dtype=int)
    relaxed_ok, whole_ok = ones.copy(), ones.copy()
    for keep, whole in ((relaxed_ok, False), (whole_ok, True)):
        keep[ones] = _undominated(code[ones], _merits(value[ones], price[ones], qmax[ones], capacity,
                                                      _sub(tiers, ones), integer_shares=whole), max_active)
    relaxed = _knapsack_program(value[relaxed_ok], price[relaxed_ok], qmax[relaxed_ok], capacity, max_active,
                                _sub(tiers, relaxed_ok), integer_shares=False)
    if relaxed is None:
        return out
    out[relaxed_ok] = _fit(np.floor(relaxed.x[:int(relaxed_ok.sum())] + 1e-6), price[relaxed_ok], capacity,
                           _sub(tiers, relaxed_ok))
    if float(value * price @ out) >= -float(relaxed.fun) - HALF_CENT:
        return out
    if qmax[ones].max() <= SHARES_EXACT:
        res = _knapsack_program(value[whole_ok], price[whole_ok], qmax[whole_ok], capacity, max_active,
                                _sub(tiers, whole_ok), integer_shares=True)
        out[:] = 0.0
        if res is not None:
            out[whole_ok] = _fit(np.floor(res.x[:int(whole_ok.sum())] + 1e-6), price[whole_ok], capacity,
                                 _sub(tiers, whole_ok))
        return out
    q = _top_up(out, value, price, qmax, capacity, tiers)
    g = _knapsack_greedy(price, qmax, capacity, max_active, tiers)
    return g if float(value * price @ g) > float(value * price @ q) else q


def _sub(tiers: TierRooms | None, keep: np.ndarray) -> TierRooms | None:
    return TierRooms(tiers.code[keep], tiers.room) if tiers is not None else None


def _undominated(code: np.ndarray, merits: tuple[np.ndarray, ...], max_active: int) -> np.ndarray:
    """The plans a knapsack can need: a plan is left out when `max_active` others in its market-cap tier
    (`code`) are at least as good in every one of `merits` (larger is better), chosen so that such a plan
    can take over whatever the left-out one holds, in the same rooms, for no less value. An optimum
    holds at most `max_active` plans, so one of those is idle: the optimum over the rest is the optimum.
    (Each plan has at most as many dominators as plans before it in the lexicographic order of the
    merits, so the left-out plans' swaps end.) This cuts a 400-plan program to the few dozen that matter."""
    keep = np.zeros(len(code), dtype=bool)
    for t in np.unique(code):
        idx = np.flatnonzero(code == t)
        order = idx[np.lexsort((idx, *[-m[idx] for m in reversed(merits)]))]  # best first, then by row
        cover = np.ones((len(order), len(order)), dtype=bool)  # [j, i]: plan i at least as good as plan j
        for m in merits:
            cover &= m[order][None, :] >= m[order][:, None]
        keep[order[np.tril(cover, k=-1).sum(axis=1) < max_active]] = True
    return keep


def _merits(value: np.ndarray, price: np.ndarray, qmax: np.ndarray, capacity: float, tiers: TierRooms | None,
            *, integer_shares: bool) -> tuple[np.ndarray, ...]:
    """What makes one plan take over another's holding at no loss. Shares continuous: value per dollar, the
    dollars it can take (full size capped by its rooms) and a price no higher (its one share is never more
    dollars than the other's). Whole shares: value per share, a price no higher (the same shares cost no
    more) and as many shares allowed."""
    if integer_shares:
        return value * price, -price, qmax
    room = np.minimum(tiers.room[tiers.code], capacity) if tiers is not None else np.full(len(value), capacity)
    return value, np.minimum(qmax * price, room), -price


def _knapsack_program(value: np.ndarray, price: np.ndarray, qmax: np.ndarray, capacity: float, max_active: int,
                      tiers: TierRooms | None, *, integer_shares: bool, exact: bool = False) -> OptimizeResult | None:
    """The knapsack as a HiGHS program over x = [q, y]: y (listening) integer, q whole when `integer_shares`
    (proven to `HALF_CENT`, or to the solver's relative 1e-9 when `exact`)."""
    n = len(value)
    eye = np.eye(n)
    rows = [np.r_[price, np.zeros(n)], np.r_[np.zeros(n), np.ones(n)]]
    hi = [capacity, float(max_active)]
    if tiers is not None:
        for t, room in enumerate(tiers.room):
            if (tiers.code == t).any():
                rows.append(np.r_[np.where(tiers.code == t, price, 0.0), np.zeros(n)])
                hi.append(float(room))
    a = np.vstack(rows)
    link = np.hstack([eye, -np.diag(qmax)])  # q - qmax y <= 0
    link_lo = np.hstack([eye, -eye])  # q - y >= 0
    obj = np.r_[-value * price, np.zeros(n)]
    cons = [
        LinearConstraint(a, np.full(len(hi), -np.inf), hi),
        LinearConstraint(link, -np.inf, 0.0),
        LinearConstraint(link_lo, 0.0, np.inf),
    ]
    bounds = Bounds(np.zeros(2 * n), np.r_[qmax, np.ones(n)])
    return solve(obj, cons, np.r_[np.full(n, float(integer_shares)), np.ones(n)], bounds, what="maxdiff packing",
                 abs_gap=HALF_CENT if integer_shares and not exact else 0.0)


def _fit(q: np.ndarray, price: np.ndarray, capacity: float, tiers: TierRooms | None) -> np.ndarray:
    """`q` trimmed share by share until it fits every room: solver tolerance must never overfill one."""
    n = len(q)
    while float(q @ price) > capacity or (tiers is not None and not tiers.fits(q, price)):
        over = np.ones(n, dtype=bool)
        if float(q @ price) <= capacity and tiers is not None:
            used = np.bincount(tiers.code, weights=q * price, minlength=len(tiers.room))
            over = (used > tiers.room + 1e-6)[tiers.code]
        q[int(np.argmax(np.where((q > 0) & over, price, -np.inf)))] -= 1
    return q


def _top_up(q: np.ndarray, value: np.ndarray, price: np.ndarray, qmax: np.ndarray, capacity: float,
            tiers: TierRooms | None) -> np.ndarray:
    """More whole shares of the plans already listening, best value first, while every room allows."""
    q = q.copy()
    room = capacity - float(q @ price)
    tier_left = (tiers.room - np.bincount(tiers.code, weights=q * price, minlength=len(tiers.room))
                 if tiers is not None else None)
    for i in np.argsort(-value, kind="stable"):
        if q[i] <= 0:
            continue
        left = room if tier_left is None or tiers is None else min(room, tier_left[tiers.code[i]])
        add = min(qmax[i] - q[i], math.floor(left / price[i] + 1e-9))
        if add >= 1:
            q[i] += add
            room -= add * price[i]
            if tier_left is not None and tiers is not None:
                tier_left[tiers.code[i]] -= add * price[i]
    return q


def _knapsack_greedy(price: np.ndarray, qmax: np.ndarray, capacity: float, max_active: int,
                     tiers: TierRooms | None = None) -> np.ndarray:
    """By rank (rows are sorted by avg_return): full size while room allows (the tier's too), shrink the tail."""
    q = np.zeros(len(price))
    room = capacity
    tier_room = tiers.room.copy() if tiers is not None else None
    for i in range(len(price)):
        if (q > 0).sum() >= max_active:
            break
        left = room if tier_room is None or tiers is None else min(room, tier_room[tiers.code[i]])
        take = min(qmax[i], math.floor(left / price[i] + 1e-9))
        if take >= 1:
            q[i] = take
            room -= take * price[i]
            if tier_room is not None and tiers is not None:
                tier_room[tiers.code[i]] -= take * price[i]
    return q


def pack_layers(
    targets: Targets,
    opps: pd.DataFrame,
    params: Params,
    equity: float,
    buying_power: float | None,
    at: time = time(9, 30),
    method: str | None = None,
) -> Packing:
    """Size the directional pack in shares and pack maxdiff plans into the room left at time `at`
    (`buying_power` None: the parameters' account, see `Params.account`)."""
    m = Method(method or targets.method)
    account = params.account(equity, buying_power)
    margin, dir_bucket, total_bucket = account.margin, account.directional_bucket, account.total_bucket
    directional, leftover = _directional(targets, opps, equity, dir_bucket, params)
    dir_cost = float(directional["cost"].sum())
    budget = max(total_bucket - dir_cost, 0.0)
    capacity = params.maxdiff_budget(equity, dir_cost, at, buying_power)
    plans, excluded = _eligible(opps, set(directional.loc[directional["qty"] > 0, "symbol"]), params, margin)
    max_active = params.sizing.maxdiff_max_active
    n = len(plans)
    cols = ["symbol", "side", "high_target", "low_target", "avg_return", "limit_price", "rank", "status",
            "qty", "cost", "room_needed"]
    if n == 0:
        md = pd.DataFrame(columns=cols)
        objective = 0.0
    else:
        price = plans["limit_price"].to_numpy(float)
        if params.sizing.maxdiff_rule == "kelly":
            size = np.array([
                min(kelly_fraction(r, sd**2, budget / equity, params.sizing.kelly_fraction) * equity, capacity)
                for r, sd in zip(plans["maxdiff_avg_return"], _maxdiff_std(plans))
            ])
        else:
            size = np.full(n, capacity / min(max_active, n))
        qmax = np.minimum(np.floor(size / price + 1e-9), adv_share_cap(opps, plans["symbol"], price, params))
        ret = plans["maxdiff_avg_return"].to_numpy(float)
        tiers = tier_rooms(plans, directional, params, equity)
        if m is Method.OPTIMAL:
            q = _knapsack_exact(ret, price, qmax, capacity, max_active, tiers)
        else:
            q = _knapsack_greedy(price, qmax, capacity, max_active, tiers)
        md = pd.DataFrame({
            "symbol": plans["symbol"],
            "side": plans["maxdiff_side"],
            "high_target": plans["pred_high"].astype(float),
            "low_target": plans["pred_low"].astype(float),
            "avg_return": ret,
            "limit_price": price,
            "rank": plans["rank"].astype(int),
            "status": [PlanStatus.LISTENING if x > 0 else PlanStatus.QUEUED for x in q],
            "qty": q.astype(int),
            "cost": q * price,
            "room_needed": np.maximum(qmax, 1) * price,
        })
        objective = float((ret * q * price).sum())
    return Packing(
        directional=directional,
        maxdiff=md,
        maxdiff_excluded=excluded,
        method=str(m),
        margin=margin,
        directional_bucket=dir_bucket,
        total_bucket=total_bucket,
        maxdiff_budget=budget,
        maxdiff_capacity=capacity,
        maxdiff_objective=objective,
        leftover_cash=leftover,
    )
