"""Risk and liquidity limits of the directional pack (`params.risk`): who may be a candidate at all, and
the most weight each candidate may carry.

Floors (eligibility): a name priced under `min_price`, or trading under `min_adv_usd` of average daily
dollar volume (`adv_usd`), is not a candidate; the excluded table says so with the figures
("price 0.65 < min_price 5"). Caps (upper bounds on weight, for both methods):

- risk: weight x daily `volatility` <= `max_position_risk` (a share of equity), so weight <=
  max_position_risk / volatility;
- liquidity: an order buys at most `max_adv_share` of the name's dollar volume, so weight <=
  max_adv_share x adv_usd / equity (only when the equity is known: the orders build passes it, the
  backtest its starting equity; the packer also caps each order's shares at the equity it sizes for).

A name whose cap falls under its band minimum cannot hold any weight the rules allow and is out, with
the reason. A rule whose column the opportunities do not carry (a file from another tool, close-only
bars without volume) is skipped and said in `skipped` (never silently); a candidate without the value
while others have it is out ("adv_usd unknown").
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from wolfkit.config import Params


def usd(x: float) -> str:
    """USD as the messages show it: $650, $1.2M, $3.4B."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"${x / div:.1f}{unit}"
    return f"${x:,.2f}"


def _has(opps: pd.DataFrame, col: str) -> bool:
    """The column is there with at least one value (a column of NaN is no column: close-only data)."""
    return col in opps and bool(opps[col].notna().any())


def skipped(opps: pd.DataFrame, params: Params, equity: float | None) -> tuple[str, ...]:
    """The risk rules that are on but cannot apply to these opportunities, each with the fix."""
    r = params.risk
    out = []
    needs = (("min_adv_usd", r.min_adv_usd > 0, "adv_usd"), ("max_adv_share", r.max_adv_share is not None, "adv_usd"),
             ("max_position_risk", r.max_position_risk is not None, "volatility"))
    for rule, on, col in needs:
        if on and not _has(opps, col):
            out.append(f"risk.{rule} skipped: the opportunities have no {col} values (scan again: the scan writes "
                       f"{col} from bars with volume; or set risk.{rule} to turn the rule off)")
    if r.max_adv_share is not None and _has(opps, "adv_usd") and equity is None:
        out.append("risk.max_adv_share not applied to the weights: no equity given (the packer caps the shares)")
    return tuple(out)


def below_floors(opps: pd.DataFrame, params: Params) -> pd.Series:
    """Why each name fails a floor (index of `opps`; empty string: passes every floor)."""
    r = params.risk
    why = pd.Series("", index=opps.index, dtype=object)
    price = opps["price"].astype(float)
    if r.min_price > 0:
        low = price < r.min_price
        why[low] = [f"price {p:g} < min_price {r.min_price:g} (risk.min_price)" for p in price[low]]
    if r.min_adv_usd > 0 and _has(opps, "adv_usd"):
        adv = opps["adv_usd"].astype(float)
        unknown = (why == "") & adv.isna()
        why[unknown] = "adv_usd unknown: risk.min_adv_usd needs the average daily dollar volume"
        thin = (why == "") & (adv < r.min_adv_usd)
        why[thin] = [f"adv_usd {usd(a)} < min_adv_usd {usd(r.min_adv_usd)} (risk.min_adv_usd)" for a in adv[thin]]
    return why


class Caps(NamedTuple):
    """Per candidate row: the most weight the risk and liquidity limits allow (inf: no limit), and
    which limit it is ("risk", "liquidity" or "")."""

    cap: np.ndarray
    rule: np.ndarray


def weight_caps(c: pd.DataFrame, params: Params, equity: float | None) -> Caps:
    """The risk cap and the liquidity cap of each candidate row, the smaller of the two."""
    r = params.risk
    n = len(c)
    risk_cap = np.full(n, np.inf)
    liq_cap = np.full(n, np.inf)
    if r.max_position_risk is not None and _has(c, "volatility"):
        vol = c["volatility"].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            risk_cap = np.where(vol > 0, r.max_position_risk / vol, np.where(np.isnan(vol), 0.0, np.inf))
    if r.max_adv_share is not None and _has(c, "adv_usd") and equity is not None:
        adv = c["adv_usd"].to_numpy(float)
        liq_cap = np.where(np.isnan(adv), 0.0, r.max_adv_share * adv / equity)
    cap = np.minimum(risk_cap, liq_cap)
    rule = np.where(np.isinf(cap), "", np.where(risk_cap <= liq_cap, "risk", "liquidity"))
    return Caps(cap, rule.astype(object))


def cap_reason(row: pd.Series, cap: float, rule: str, params: Params, equity: float | None) -> str:
    """Why a candidate whose cap falls under its band minimum is out, with the figures."""
    r = params.risk
    lo = float(row["lo"])
    if rule == "risk":
        vol = float(row["volatility"])
        if np.isnan(vol):
            return "volatility unknown: risk.max_position_risk needs the daily volatility"
        return (f"risk cap: daily volatility {100 * vol:.1f}% x band minimum {100 * lo:.1f}% = "
                f"{100 * vol * lo:.2f}% of equity > max_position_risk {100 * (r.max_position_risk or 0):.2f}% "
                "(risk.max_position_risk)")
    adv = float(row["adv_usd"])
    if np.isnan(adv):
        return "adv_usd unknown: risk.max_adv_share needs the average daily dollar volume"
    return (f"liquidity cap: {100 * (r.max_adv_share or 0):g}% of adv_usd {usd(adv)} = {usd(cap * (equity or 0))}, "
            f"{100 * cap:.1f}% of equity, under the band minimum {100 * lo:.1f}% (risk.max_adv_share)")
