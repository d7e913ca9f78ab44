"""The opportunities table (scan output, `wolfkit build` input): load it and check every row.

Symbols pass the one normaliser (`wolfkit.symbols`): `rgti` and `RGTI` are the same symbol, so the
second is a duplicate row, and text that is not a ticker is a bad row. A bad row is never dropped silently: it is reported by its row number as a spreadsheet shows it
(header = row 1, first data row = row 2) and by column, and the run either stops with a
`BadInputError` listing every problem and the fix, or — when `portfolio.quarantine_bad_rows` is true —
sets the row aside in `OpportunitySet.quarantined` with the problem text, for the report to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from wolfkit.config import Params
from wolfkit.domain import MaxdiffSide, Strategy
from wolfkit.errors import BadInputError
from wolfkit.symbols import normalize_symbols

REQUIRED = ["symbol", "sector", "market_cap", "price", "score"]
OPTIONAL = [
    "expected_return",
    "return_std",
    "strategy",
    "take_profit",
    "stop_loss",
    "pred_high",
    "pred_low",
    "maxdiff_avg_return",
    "maxdiff_side",
    "maxdiff_return_std",
    "atr",
    "adv_usd",
    "volatility",
]

STRATEGIES = tuple(s.value for s in Strategy.directional())
MAXDIFF_SIDES = tuple(s.value for s in MaxdiffSide)
_NUMERIC = ["market_cap", "price", "score", "expected_return", "return_std", "take_profit", "stop_loss",
            "pred_high", "pred_low", "maxdiff_avg_return", "maxdiff_return_std", "atr", "adv_usd", "volatility"]
_POSITIVE_IF_GIVEN = ["return_std", "take_profit", "stop_loss", "pred_high", "pred_low"]
_MAXDIFF = ["pred_high", "pred_low", "maxdiff_avg_return", "maxdiff_side"]


@dataclass(frozen=True)
class OpportunitySet:
    """`valid`: rows that passed (plus `cap_tier`); `quarantined`: the original rows set aside, plus `row`
    (as numbered in the file) and `problem`."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame


def load_opportunities(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet opportunities table (by suffix); the columns are checked by `validate_opportunities`."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: opportunities file not found; create one with `wolfkit scan --out {p}`")
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(p, dtype={"symbol": str, "sector": str, "strategy": str, "maxdiff_side": str})
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise BadInputError(f"{p}: cannot be read as {suffix[1:]} ({e}); check the file") from None
    raise BadInputError(f"{p}: unknown suffix {suffix!r}; use .csv or .parquet")


def _row_problems(df: pd.DataFrame) -> dict[int, list[str]]:
    """Position in `df` -> the problems of that row, each naming its column."""
    problems: dict[int, list[str]] = {}

    def flag(mask: pd.Series, text: str) -> None:
        for pos in np.flatnonzero(mask.to_numpy()):
            problems.setdefault(int(pos), []).append(text)

    num: dict[str, pd.Series] = {}
    for col in _NUMERIC:
        if col not in df:
            continue
        raw = df[col]
        conv = pd.to_numeric(raw, errors="coerce")
        flag(conv.isna() & raw.notna() & (raw.astype(str).str.strip() != ""), f"{col}: not a number")
        num[col] = conv.astype(float)
    sym, why = normalize_symbols(df["symbol"])
    flag(sym.isna() | (sym == ""), "symbol: missing")
    first: dict[str, int] = {}
    for pos, (s, w) in enumerate(zip(sym, why)):
        if w is not None and s:
            problems.setdefault(pos, []).append(f"symbol: {w}")
        elif s and s in first:
            problems.setdefault(pos, []).append(
                f"symbol: duplicate of {s} on row {first[s] + 2} (symbols are compared in upper case)")
        elif s:
            first[s] = pos
    sec = df["sector"].astype("string").str.strip()
    flag(sec.isna() | (sec == ""), "sector: missing")
    price = num["price"]
    flag(~np.isfinite(price) | (price <= 0), "price: must be a positive number")
    cap = num["market_cap"]
    flag(~np.isfinite(cap) | (cap <= 0), "market_cap: must be a positive number (USD)")
    score = num["score"]
    flag(~np.isfinite(score) | (score < 0) | (score > 100), "score: must be between 0 and 100")
    for col in _POSITIVE_IF_GIVEN:
        if col in num:
            v = num[col]
            flag(v.notna() & ~(np.isfinite(v) & (v > 0)), f"{col}: must be a positive number when given")
    for col in ("expected_return", "maxdiff_avg_return"):
        if col in num:
            flag(num[col].notna() & ~np.isfinite(num[col]), f"{col}: must be finite when given")
    # maxdiff_return_std 0 is a side whose limit never traded in the lookback; the risk inputs may be 0 too
    for col in ("maxdiff_return_std", "atr", "adv_usd", "volatility"):
        if col in num:
            v = num[col]
            flag(v.notna() & ~(np.isfinite(v) & (v >= 0)), f"{col}: must be a number >= 0 when given")
    if "strategy" in df:
        s = df["strategy"].astype("string").str.strip()
        flag(s.notna() & (s != "") & ~s.isin(STRATEGIES), f"strategy: must be one of {', '.join(STRATEGIES)}")
    if "maxdiff_side" in df:
        s = df["maxdiff_side"].astype("string").str.strip()
        flag(s.notna() & (s != "") & ~s.isin(MAXDIFF_SIDES), f"maxdiff_side: must be one of {', '.join(MAXDIFF_SIDES)}")
    present = [c for c in _MAXDIFF if c in df]
    if present:
        given = pd.concat(
            [df[c].notna() & (df[c].astype(str).str.strip() != "") for c in present], axis=1
        )
        partial = given.any(axis=1) & ~(given.all(axis=1) & (len(present) == len(_MAXDIFF)))
        flag(partial, "maxdiff: pred_high, pred_low, maxdiff_avg_return and maxdiff_side go together (all or none)")
        if "pred_high" in num and "pred_low" in num:
            flag(num["pred_low"] > num["pred_high"], "pred_low: above pred_high")
    return problems


def validate_opportunities(df: pd.DataFrame, params: Params, source: str) -> OpportunitySet:
    """Check every row against the contract; stop with all problems listed, or quarantine (never silently).

    Row numbers are as in the file: the header is row 1, so the first data row is row 2.
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise BadInputError(
            f"{source}: missing required column(s) {missing}; an opportunities table needs {REQUIRED} "
            f"(optional: {OPTIONAL})"
        )
    df = df.reset_index(drop=True)
    problems = _row_problems(df)
    bad = sorted(problems)
    lines = [f"row {pos + 2}: " + "; ".join(problems[pos]) for pos in bad]
    if bad and not params.portfolio.quarantine_bad_rows:
        shown = lines[:50] + ([f"… and {len(lines) - 50} more rows"] if len(lines) > 50 else [])
        raise BadInputError(
            f"{source}: {len(bad)} bad row(s):\n  " + "\n  ".join(shown)
            + "\nfix the rows, or set portfolio.quarantine_bad_rows: true to set them aside (they are reported)"
        )
    quarantined = df.iloc[bad].copy()
    quarantined.insert(0, "row", [pos + 2 for pos in bad])
    quarantined["problem"] = ["; ".join(problems[pos]) for pos in bad]
    valid = df.drop(index=bad).reset_index(drop=True)
    valid["symbol"] = normalize_symbols(valid["symbol"])[0]
    valid["sector"] = valid["sector"].astype(str).str.strip()
    for col in _NUMERIC:
        if col in valid:
            valid[col] = pd.to_numeric(valid[col], errors="coerce").astype(float)
    for col in ("strategy", "maxdiff_side"):
        if col in valid:
            s = valid[col].astype("string").str.strip()
            valid[col] = s.where(s.notna() & (s != ""), None).astype(object)
    if "cap_tier" not in valid:
        valid["cap_tier"] = [params.portfolio.market_cap.tier_of(c) for c in valid["market_cap"]]
    return OpportunitySet(valid=valid, quarantined=quarantined.reset_index(drop=True))
