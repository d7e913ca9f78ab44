"""Data quality for research: what was left out of the market data, and why.

Why: real history is dirty. A file can hold empty or impossible prices (the files provider drops
them under `data.bad_rows: quarantine`, see `wolfkit.data.files`), a spin-off or a bad print shows as a
one-day jump of 35–60% that a backtest must not book as profit nor a scanner take as a signal, and a
universe file listing today's members makes any earlier window look better than it was (companies
that left the index are missing). Everything here is pure: tables in, tables or text out.

The contract file is `data_quality.csv` (DATA_QUALITY_COLUMNS): one row per problem, `kind` bad_row
(a row dropped while reading a file: file, line, field) or jump (a one-day move left out of research).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd

QUARANTINE_COLUMNS = ["file", "line", "symbol", "date", "field", "problem"]
JUMP_COLUMNS = ["symbol", "date", "move", "sector_move", "problem"]
DATA_QUALITY_COLUMNS = [*QUARANTINE_COLUMNS, "kind"]

# The sector "matches" a symbol's jump when its median move that day goes the same way and is at
# least this fraction of the symbol's (log) move: then the whole sector moved and the jump is real.
SECTOR_MATCH = 0.5


class Kind(StrEnum):
    """What a `data_quality.csv` row is."""

    BAD_ROW = "bad_row"  # dropped while reading a file (data.bad_rows: quarantine)
    JUMP = "jump"  # a one-day move with no matching sector move: spin-off, split or bad print


def empty_quarantine() -> pd.DataFrame:
    """A quarantine list with no rows (QUARANTINE_COLUMNS)."""
    return pd.DataFrame({c: pd.Series(dtype=int if c == "line" else object) for c in QUARANTINE_COLUMNS})


def quarantine_count(quarantined: pd.DataFrame) -> int:
    """Rows dropped: a row with several bad fields is listed once per field but counted once."""
    return int(len(quarantined[["file", "line"]].drop_duplicates())) if len(quarantined) else 0


def quarantined_rows(provider: object) -> pd.DataFrame:
    """The rows a provider dropped while reading its files (QUARANTINE_COLUMNS); empty for providers
    that read no files (demo, alpaca)."""
    q = getattr(provider, "quarantined", None)
    return empty_quarantine() if q is None else q


def find_jumps(bars: pd.DataFrame, sectors: pd.Series, threshold: float) -> pd.DataFrame:
    """One-day close-to-close jumps with no matching move in the rest of the sector (JUMP_COLUMNS).

    `bars`: long bars (symbol, date, close; other columns ignored). `sectors`: sector by symbol.
    A row is flagged when the absolute log return from the symbol's previous close exceeds
    `threshold` (log, so a halving and its doubling back are judged alike: 0.35 is -30% or +42%) and
    the median log return of the *other* symbols of its sector that day does not go the same way by at
    least SECTOR_MATCH of it (no other symbol that day: flagged). `move` and `sector_move` are reported
    as simple returns. Causal: the verdict for day D reads closes up to D only, so the same bars cut
    after D give the same flags up to D.
    """
    if not 0 < threshold:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    b = bars.loc[bars["close"].notna() & (bars["close"] > 0), ["symbol", "date", "close"]]
    b = b.assign(symbol=b["symbol"].astype(str)).sort_values(["symbol", "date"], kind="stable", ignore_index=True)
    b["m"] = np.log(b["close"]).groupby(b["symbol"], sort=False).diff()
    b["sector"] = b["symbol"].map(sectors)
    hit = b[b["m"].abs() > threshold]
    if hit.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            JUMP_COLUMNS, [object, "datetime64[ns]", float, float, object])})
    others = b.loc[b["m"].notna() & b["sector"].notna(), ["sector", "date", "symbol", "m"]]
    pairs = hit[["symbol", "sector", "date"]].merge(others, on=["sector", "date"], suffixes=("", "_other"))
    pairs = pairs[pairs["symbol"] != pairs["symbol_other"]]
    s = pairs.groupby(["symbol", "date"])["m"].median().rename("s")
    hit = hit.join(s, on=["symbol", "date"])
    matched = (np.sign(hit["s"]) == np.sign(hit["m"])) & (hit["s"].abs() >= SECTOR_MATCH * hit["m"].abs())
    out = hit.loc[~matched].copy()
    out["move"], out["sector_move"] = np.expm1(out["m"]), np.expm1(out["s"])
    out["problem"] = [
        f"one-day move {m:+.1%} while the rest of its sector moved {s:+.1%}: a spin-off, split or bad print?"
        if pd.notna(s) else f"one-day move {m:+.1%} and no other symbol of its sector to compare: a spin-off, "
        "split or bad print?"
        for m, s in zip(out["move"], out["sector_move"])
    ]
    return out.sort_values(["date", "symbol"], ignore_index=True)[JUMP_COLUMNS]


def survivorship_warning(universe_as_of: date | None, start: date) -> str | None:
    """A warning when a universe taken after `start` (or at an unknown date) is used for a window
    beginning at `start`; None when the universe predates the window. For file and broker universes;
    the demo market is synthetic and says so elsewhere."""
    if universe_as_of is None:
        return (
            "survivorship bias possible: the universe's date is unknown (set data.universe_as_of); if it lists "
            f"members as of a date after {start}, companies that left before then are missing and past returns "
            "look better than they were"
        )
    if universe_as_of > start:
        return (
            f"survivorship bias: the universe is as of {universe_as_of}, after the window start {start}; "
            f"companies that left it before {universe_as_of} are missing, so past returns look better than they were"
        )
    return None


def data_quality_table(*frames: pd.DataFrame) -> pd.DataFrame:
    """Quarantined rows (QUARANTINE_COLUMNS) and jumps (JUMP_COLUMNS, optionally with `file`) as one
    DATA_QUALITY_COLUMNS table, in the order given."""
    parts = []
    for f in frames:
        cols = set(f.columns)
        if set(QUARANTINE_COLUMNS) <= cols:
            part = f[QUARANTINE_COLUMNS].assign(kind=Kind.BAD_ROW.value)
        elif set(JUMP_COLUMNS) <= cols:
            part = pd.DataFrame({
                "file": f["file"] if "file" in cols else "",
                "line": pd.NA,
                "symbol": f["symbol"].astype(str),
                "date": pd.to_datetime(f["date"]).dt.strftime("%Y-%m-%d"),
                "field": "close",
                "problem": f["problem"],
                "kind": Kind.JUMP.value,
            })
        else:
            raise ValueError(
                f"data_quality_table: a frame with columns {sorted(cols)} is neither a quarantine list "
                f"({QUARANTINE_COLUMNS}) nor a jump list ({JUMP_COLUMNS})"
            )
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=DATA_QUALITY_COLUMNS)
    out = pd.concat([p for p in parts if len(p)] or [parts[0]], ignore_index=True)
    out["line"] = out["line"].astype("Int64")
    out["date"] = out["date"].astype(str)
    return out[DATA_QUALITY_COLUMNS]


def write_data_quality(path: str | Path, *frames: pd.DataFrame) -> Path:
    """Write the contract file `data_quality.csv` (DATA_QUALITY_COLUMNS) from quarantine and jump lists."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data_quality_table(*frames).to_csv(path, index=False)
    return path
