"""Ticker symbols: the one normaliser every boundary applies (opportunities table, orders file,
universe files, parameters).

A symbol is stripped and upper-cased, then must be 1–12 characters from `A–Z 0–9 . -`, starting with
a letter or digit (`BRK.B`, `BF-B`). So `rgti` and `RGTI` are the same symbol (one position, one cap),
and text such as `../../etc/passwd`, `AAPL;rm -rf ~` or `[bold]` is refused where it enters, never
carried into client order ids, file names or console output.
"""

from __future__ import annotations

import re
from typing import Annotated

import pandas as pd
from pydantic import AfterValidator

MAX_LENGTH = 12
_VALID = re.compile(r"[A-Z0-9][A-Z0-9.\-]*")
RULE = f"1-{MAX_LENGTH} characters A-Z, 0-9, '.' or '-', starting with a letter or digit (e.g. BRK.B)"


def _problem(raw: str, symbol: str) -> str | None:
    """Why `symbol` (`raw` stripped and upper-cased) is not a ticker, or None when it is one."""
    if symbol and len(symbol) <= MAX_LENGTH and _VALID.fullmatch(symbol):
        return None
    return f"{raw!r} is not a ticker: use {RULE}"


def normalize_symbol(raw: str) -> str:
    """`raw` stripped and upper-cased; `ValueError` (saying what is allowed) when it is not a ticker."""
    if not isinstance(raw, str):
        raise ValueError(f"a symbol must be text, got {type(raw).__name__}")
    symbol = raw.strip().upper()
    problem = _problem(raw, symbol)
    if problem:
        raise ValueError(problem)
    return symbol


def normalize_symbols(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Column form: (stripped upper-case symbols, None where `raw` is missing; the problem per row, None
    when valid, missing or blank — blank is the caller's "missing"). Done once per distinct value."""
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    clean = [str(u).strip().upper() for u in uniques]
    problems = [_problem(str(u), c) if c else None for u, c in zip(uniques, clean)]
    index = raw.index
    sym = pd.Series([clean[k] if k >= 0 else None for k in codes], index=index, dtype=object)
    why = pd.Series([problems[k] if k >= 0 else None for k in codes], index=index, dtype=object)
    return sym, why


Symbol = Annotated[str, AfterValidator(normalize_symbol)]
"""A pydantic field type: a normalised, valid ticker."""
