"""Which symbols a scan window cannot score, and why: no bars, halted, too little history, long gaps,
non-positive prices, missing metadata. Listed with the reason, never dropped silently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from wolfkit.rolling import last_seen

if TYPE_CHECKING:
    from wolfkit.config import ScanParams
    from wolfkit.signals import Panel

EXCLUDED_COLUMNS = ["symbol", "reason"]


def find_exclusions(panel: Panel, symbols: list[str], scan: ScanParams) -> pd.DataFrame:
    """Symbols that cannot be scanned, with every reason (columns: symbol, reason).

    Each reason reads `<kind>: <detail>` (kinds: no bars, halted, too little history, gap,
    non-positive price); several are joined with "; ". Sessions are the panel's bar dates.
    """
    T = panel.shape[0]
    obs = ~np.isnan(panel.close)
    seen = last_seen(obs)
    n_bars = obs.sum(axis=0)
    since_last = np.where(seen[-1] >= 0, T - 1 - seen[-1], T)
    prev = np.vstack([np.full((1, obs.shape[1]), -1), seen[:-1]])
    gaps = np.where(obs & (prev >= 0), np.arange(T)[:, None] - prev - 1, 0)
    longest = gaps.max(axis=0, initial=0)
    gap_end = gaps.argmax(axis=0)
    fields = [panel.close] + ([panel.open, panel.high, panel.low] if panel.has_ohlc else [])
    nonpos = np.zeros_like(obs)
    for f in fields:
        nonpos |= obs & (f <= 0)
    first_nonpos = nonpos.argmax(axis=0)

    reasons: dict[str, list[str]] = {}
    for j in np.flatnonzero((n_bars == 0) | (since_last > scan.max_gap_days) | (n_bars < scan.min_history)
                            | (longest > scan.max_gap_days) | nonpos.any(axis=0)):
        sym, why = panel.symbols[j], []
        if n_bars[j] == 0:
            why.append(f"no bars: none in the {T} sessions before the scan date (halted, delisted or unknown)")
        else:
            if since_last[j] > scan.max_gap_days:
                why.append(
                    f"halted: last bar {panel.dates[seen[-1, j]].date()}, {since_last[j]} sessions "
                    f"before the last data date > max_gap_days {scan.max_gap_days}"
                )
            if n_bars[j] < scan.min_history:
                why.append(f"too little history: {n_bars[j]} bars < min_history {scan.min_history}")
            if longest[j] > scan.max_gap_days:
                why.append(
                    f"gap: {longest[j]} sessions without bars (ending {panel.dates[gap_end[j]].date()}) "
                    f"> max_gap_days {scan.max_gap_days}"
                )
            if nonpos[:, j].any():
                why.append(f"non-positive price: on {panel.dates[first_nonpos[j]].date()}")
        reasons[sym] = why
    in_panel = set(panel.symbols)
    for sym in symbols:
        if sym not in in_panel:
            reasons[sym] = [f"no bars: none in the {T} sessions before the scan date (halted, delisted or unknown)"]
    rows = [(s, "; ".join(r)) for s, r in reasons.items()]
    return pd.DataFrame(rows, columns=EXCLUDED_COLUMNS)


def exclusions(panel: Panel, uni: pd.DataFrame, scan: ScanParams, symbols: list[str] | None = None) -> pd.DataFrame:
    """`find_exclusions` plus the universe rows without metadata, one row per symbol (reasons joined).

    `symbols`: the universe symbols to report as "no bars" when not among the panel's columns
    (default: the whole universe).
    """
    no_meta = uni.index[uni["sector"].isna() | ~(pd.to_numeric(uni["market_cap"], errors="coerce") > 0)]
    excluded = find_exclusions(panel, list(uni.index) if symbols is None else symbols, scan)
    reasons: dict[str, list[str]] = {}
    for sym, why in zip(excluded["symbol"], excluded["reason"]):
        reasons.setdefault(sym, []).append(why)
    for sym in no_meta:
        reasons.setdefault(sym, []).append("no metadata: no sector or no positive market_cap in the universe")
    rows = sorted(reasons.items())
    return pd.DataFrame({"symbol": [s for s, _ in rows], "reason": ["; ".join(r) for _, r in rows]},
                        columns=EXCLUDED_COLUMNS, dtype=object)
