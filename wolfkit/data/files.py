"""Local files as a `DataProvider`: CSV or Parquet bars plus a universe file.

Why: users bring their own history (a vendor export, a research data set) and their own universe
metadata. Two bar layouts are read and told apart by their columns:

- long OHLCV: `symbol, date, open, high, low, close, volume`, one row per symbol and session;
- wide close-only: `date, SYM1, SYM2, …` (a date x symbol table of closes, as in PyPortfolioOpt's
  `stock_prices.csv`); empty cells (before a listing, after a delisting) stay missing — never
  filled — and `has_ohlc` is False, so open/high/low/volume are NaN.

The universe file needs a symbol, a sector and a market cap; headers are matched loosely so real
exports load as they are (`Symbol`, `Sector` or `GICS Sector`, `Market Cap`, `Name`/`Security`).

Every problem is a `BadInputError` naming the file, the line (CSV, header = line 1) or row
(Parquet), the column and the fix. Files have no quotes: `latest_quotes` is empty and callers fall
back to the last close.
"""

from __future__ import annotations

import csv
import re
import warnings
from datetime import date, datetime
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from wolfkit.data.base import BAR_COLUMNS, QUOTE_COLUMNS
from wolfkit.errors import BadInputError
from wolfkit.symbols import RULE as SYMBOL_RULE
from wolfkit.symbols import normalize_symbol, normalize_symbols

Format = Literal["csv", "parquet"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
_SHOW = 5  # examples quoted in an error message
_MISSING = ["", "NaN", "nan", "N/A", "n/a", "#N/A", "null", "NULL", "None"]  # not "NA": it is a ticker

# Accepted header spellings (after normalising to lower_snake_case), first match wins.
_UNIVERSE_HEADERS = {
    "symbol": ("symbol", "ticker"),
    "sector": ("sector", "gics_sector"),
    "market_cap": ("market_cap", "marketcap", "market_capitalization", "mkt_cap"),
    "name": ("name", "security", "company"),
    "theme": ("theme",),
}


class FileProvider:
    """Bars and universe metadata from local CSV or Parquet files."""

    synthetic = False

    def __init__(self, bars_path: str | Path, universe_path: str | Path, fmt: Format = "csv") -> None:
        if fmt not in ("csv", "parquet"):
            raise BadInputError(f"file format {fmt!r}: use csv or parquet")
        self.name = fmt
        self.bars_path = Path(bars_path)
        self.universe_path = Path(universe_path)
        self._bars, self.has_ohlc = read_bars(self.bars_path, fmt)
        universe, self.excluded = read_universe(self.universe_path)
        in_bars = set(self._bars["symbol"].unique())
        kept = universe["symbol"].isin(in_bars)
        if not kept.any():
            raise BadInputError(
                f"{self.universe_path}: none of its {len(universe)} symbols appear in {self.bars_path} "
                f"(which has e.g. {sorted(in_bars)[:_SHOW]}); point data.universe_path and data.bars_path "
                "at files that describe the same symbols"
            )
        self.no_metadata = sorted(in_bars - set(universe["symbol"]))
        if self.no_metadata:
            warnings.warn(
                f"{self.bars_path}: {len(self.no_metadata)} symbol(s) with bars have no row in {self.universe_path} "
                f"(e.g. {self.no_metadata[:_SHOW]}) and are left out; add them to the universe file to include them",
                stacklevel=2,
            )
        self._universe = universe[kept].reset_index(drop=True)

    def universe(self) -> pd.DataFrame:
        """Universe rows that have bars: symbol, sector, market_cap (+ name, theme when given).

        Symbols with bars but no metadata are listed in `no_metadata`; universe rows set aside for
        an empty market cap are in `excluded` (symbol, reason)."""
        return self._universe.copy()

    def daily_bars(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        """Bars for sessions in [start, end]; close-only sources have NaN open/high/low/volume."""
        symbols = sorted(set(symbols))
        known = self._bars["symbol"].cat.categories
        unknown = [s for s in symbols if s not in known]
        if unknown:
            raise BadInputError(
                f"{self.bars_path}: no bars for symbol(s) {unknown[:_SHOW]}"
                f"{' …' if len(unknown) > _SHOW else ''}; add them to the file or drop them from data.symbols"
            )
        b = self._bars
        mask = b["symbol"].isin(symbols) & (b["date"] >= pd.Timestamp(start)) & (b["date"] <= pd.Timestamp(end))
        out = b.loc[mask].reset_index(drop=True)
        out["symbol"] = out["symbol"].astype(str)
        return out

    def minute_bars(self, symbols: Sequence[str], session: date) -> pd.DataFrame:
        raise BadInputError(
            f"{self.bars_path} holds daily bars only, so there are no minute bars for {session}; "
            "replays and intraday runs need data.source demo or alpaca"
        )

    def latest_quotes(self, symbols: Sequence[str], as_of: datetime) -> pd.DataFrame:
        """Files carry no quotes: an empty quotes table (callers use the last close instead)."""
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            QUOTE_COLUMNS, ["object", "float64", "float64", "float64", "float64", "datetime64[ns, America/New_York]"]
        )})


# -- reading -------------------------------------------------------------------------------------


def _norm(header: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(header).strip().lower()).strip("_")


def _symbols(path: Path, fmt: Format, raw: pd.Series, column: str) -> pd.Series:
    """Tickers through the one normaliser (`wolfkit.symbols`); text that is not a ticker is refused by row."""
    symbol, why = normalize_symbols(raw)
    bad = np.flatnonzero(why.notna().to_numpy())
    if len(bad):
        raise BadInputError(
            f"{path}: column '{column}' has value(s) that are not tickers at "
            f"{_examples(path, fmt, bad, raw.iloc[bad])}; use {SYMBOL_RULE}")
    return symbol


def _where(path: Path, fmt: Format, index: int) -> str:
    """Human position of 0-based data row `index`: CSV line (header is line 1) or Parquet row."""
    return f"line {index + 2}" if fmt == "csv" else f"row {index + 1}"


def _examples(path: Path, fmt: Format, rows: np.ndarray, values: pd.Series | None = None) -> str:
    def value(k: int) -> str:
        v = values.iloc[k]
        return f" ({(v.item() if isinstance(v, np.generic) else v)!r})"

    shown = [_where(path, fmt, int(i)) + (value(k) if values is not None else "") for k, i in enumerate(rows[:_SHOW])]
    more = f" and {len(rows) - _SHOW} more" if len(rows) > _SHOW else ""
    return ", ".join(shown) + more


def _fmt_of(path: Path, fmt: Format) -> Format:
    return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv" if path.suffix.lower() == ".csv" else fmt


def _read_table(path: Path, fmt: Format, what: str) -> tuple[pd.DataFrame, Format]:
    """The raw table with every cell as text (CSV) or as stored (Parquet)."""
    if not path.is_file():
        raise BadInputError(f"{path}: {what} file not found; check the path (data.{what}_path) or create the file")
    fmt = _fmt_of(path, fmt)
    try:
        if fmt == "parquet":
            raw = pd.read_parquet(path)
        else:
            with path.open(newline="") as f:
                header = next(csv.reader(f), [])
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                raise BadInputError(f"{path}: line 1: column(s) {dupes} appear more than once; keep one of each")
            raw = pd.read_csv(path, skipinitialspace=True, keep_default_na=False, na_values=_MISSING)
    except BadInputError:
        raise
    except Exception as e:  # noqa: BLE001 — any parser failure becomes a clear message
        raise BadInputError(f"{path}: cannot be read as {fmt} ({type(e).__name__}: {e}); fix or re-export the file") from None
    if raw.empty:
        raise BadInputError(f"{path}: has no data rows; fill it or point data.{what}_path at another file")
    return raw, fmt


def _numbers(path: Path, fmt: Format, raw: pd.Series, column: str) -> pd.Series:
    """Numeric values; a cell that is present but not a number is an error."""
    if pd.api.types.is_numeric_dtype(raw):
        return raw.astype(float)
    values = pd.to_numeric(raw, errors="coerce")
    bad = np.flatnonzero(values.isna() & raw.notna())
    if len(bad):
        raise BadInputError(
            f"{path}: column '{column}' has non-numeric value(s) at {_examples(path, fmt, bad, raw.iloc[bad])}; "
            "use plain numbers (no currency signs or thousands separators) or leave the cell empty"
        )
    return values.astype(float)


def _dates(path: Path, fmt: Format, raw: pd.Series, column: str) -> pd.Series:
    """Session dates (tz-naive, midnight); timestamps with a zone are read in New York time."""
    try:
        parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601")
    except (ValueError, TypeError):  # mixed UTC offsets
        parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601", utc=True)
    bad = np.flatnonzero(parsed.isna())
    if len(bad):
        raise BadInputError(
            f"{path}: column '{column}' has missing or unparseable date(s) at "
            f"{_examples(path, fmt, bad, raw.iloc[bad])}; write dates as YYYY-MM-DD"
        )
    if parsed.dt.tz is not None:
        parsed = parsed.dt.tz_convert("America/New_York").dt.tz_localize(None)
    return parsed.dt.normalize().astype("datetime64[ns]")


def _positive(path: Path, fmt: Format, values: pd.Series, column: str, allow_missing: bool) -> None:
    missing = np.flatnonzero(values.isna())
    if len(missing) and not allow_missing:
        raise BadInputError(
            f"{path}: column '{column}' is empty at {_examples(path, fmt, missing)}; every row needs a price "
            "(drop the row if the symbol did not trade)"
        )
    bad = np.flatnonzero(values <= 0)
    if len(bad):
        raise BadInputError(
            f"{path}: column '{column}' has non-positive price(s) at {_examples(path, fmt, bad, values.iloc[bad])}; "
            "prices must be > 0"
        )


def read_bars(path: Path, fmt: Format = "csv") -> tuple[pd.DataFrame, bool]:
    """Validated long bars (BAR_COLUMNS, sorted by symbol and date; symbol categorical) and whether
    the source has open/high/low/volume."""
    raw, fmt = _read_table(path, fmt, "bars")
    names = [_norm(c) for c in raw.columns]
    if "symbol" in names:
        return _read_long(path, fmt, raw.set_axis(names, axis=1)), True
    if names[0] in ("date", "unnamed_0"):  # a date-indexed frame saved by pandas has no index header
        return _read_wide(path, fmt, raw.set_axis(["date", *raw.columns[1:]], axis=1)), False
    missing = [c for c in BAR_COLUMNS if c not in names]
    raise BadInputError(
        f"{path}: missing column(s) {missing}; bars need either the long layout "
        f"({', '.join(BAR_COLUMNS)}) or the wide close-only layout (date, then one column per symbol)"
    )


def _read_long(path: Path, fmt: Format, raw: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in BAR_COLUMNS if c not in raw.columns]
    if missing:
        raise BadInputError(
            f"{path}: missing column(s) {missing} (found {list(raw.columns)}); long bars need "
            f"{', '.join(BAR_COLUMNS)}, or use the wide close-only layout (date, SYM1, SYM2, …)"
        )
    symbol = _symbols(path, fmt, raw["symbol"], "symbol")
    empty = np.flatnonzero(symbol.isna() | (symbol == ""))
    if len(empty):
        raise BadInputError(f"{path}: column 'symbol' is empty at {_examples(path, fmt, empty)}; fill it or drop the row")
    bars = pd.DataFrame({"symbol": symbol, "date": _dates(path, fmt, raw["date"], "date")})
    for col in PRICE_COLUMNS:
        bars[col] = _numbers(path, fmt, raw[col], col)
        _positive(path, fmt, bars[col], col, allow_missing=False)
    bars["volume"] = _numbers(path, fmt, raw["volume"], "volume")
    negative = np.flatnonzero(bars["volume"] < 0)
    if len(negative):
        raise BadInputError(f"{path}: column 'volume' is negative at {_examples(path, fmt, negative)}; volumes must be >= 0")
    inverted = np.flatnonzero(bars["high"] < bars["low"])
    if len(inverted):
        raise BadInputError(
            f"{path}: high < low at {_examples(path, fmt, inverted)}; check for swapped high/low columns"
        )
    dup = np.flatnonzero(bars.duplicated(["symbol", "date"], keep="first"))
    if len(dup):
        raise BadInputError(
            f"{path}: duplicate (symbol, date) rows at {_examples(path, fmt, dup)}, e.g. "
            f"{bars['symbol'].iloc[dup[0]]} on {bars['date'].iloc[dup[0]].date()}; keep one row per symbol and date"
        )
    previous = bars.groupby("symbol", sort=False)["date"].shift()
    back = np.flatnonzero(bars["date"] < previous)
    if len(back):
        i = back[0]
        raise BadInputError(
            f"{path}: dates out of order at {_examples(path, fmt, back)}: {bars['symbol'].iloc[i]} "
            f"{bars['date'].iloc[i].date()} comes after {previous.iloc[i].date()}; sort the file by symbol, then date"
        )
    bars = bars.sort_values(["symbol", "date"], kind="stable", ignore_index=True)
    bars["symbol"] = bars["symbol"].astype("category")
    return bars[BAR_COLUMNS]


def _read_wide(path: Path, fmt: Format, raw: pd.DataFrame) -> pd.DataFrame:
    dates = _dates(path, fmt, raw["date"], "date")
    dup = np.flatnonzero(dates.duplicated())
    if len(dup):
        raise BadInputError(f"{path}: duplicate date(s) at {_examples(path, fmt, dup, raw['date'].iloc[dup])}; keep one row per date")
    back = np.flatnonzero(dates.diff() < pd.Timedelta(0))
    if len(back):
        raise BadInputError(
            f"{path}: dates out of order at {_examples(path, fmt, back, raw['date'].iloc[back])}; sort the rows by date"
        )
    symbols = []
    for c in raw.columns[1:]:
        try:
            symbols.append(normalize_symbol(str(c)))
        except ValueError as e:
            raise BadInputError(f"{path}: column header {str(c)!r}: {e}") from None
    dupes = sorted({s for s in symbols if symbols.count(s) > 1})
    if dupes:
        raise BadInputError(f"{path}: symbol column(s) {dupes} appear more than once; keep one column per symbol")
    closes = {}
    for col, sym in zip(raw.columns[1:], symbols):
        closes[sym] = _numbers(path, fmt, raw[col], col)
        _positive(path, fmt, closes[sym], col, allow_missing=True)
    wide = pd.DataFrame(closes)
    wide.index = dates.to_numpy()
    long = wide.stack(future_stack=True).dropna()  # empty cells (not listed yet) stay absent
    bars = pd.DataFrame({
        "symbol": pd.Categorical(long.index.get_level_values(1), categories=sorted(symbols)),
        "date": long.index.get_level_values(0),
        "close": long.to_numpy(),
    })
    for col in ("open", "high", "low", "volume"):
        bars[col] = np.nan
    return bars.sort_values(["symbol", "date"], kind="stable", ignore_index=True)[BAR_COLUMNS]


def read_universe(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validated universe (symbol, sector, market_cap, + name/theme when present) and the rows set
    aside because their market cap is empty (symbol, reason) — reported, never silently dropped."""
    raw, fmt = _read_table(path, "csv", "universe")
    headers = {_norm(c): c for c in raw.columns}
    found: dict[str, str] = {}
    for field, spellings in _UNIVERSE_HEADERS.items():
        # prefer the GICS sector over a generic 'sector' column when a file has both
        order = ("gics_sector", "sector") if field == "sector" else spellings
        match = next((headers[s] for s in order if s in headers), None)
        if match is not None:
            found[field] = match
    missing = [f for f in ("symbol", "sector", "market_cap") if f not in found]
    if missing:
        fixes = {
            "market_cap": "add a market_cap column in USD (e.g. join 'Market Cap' from sp500_financials.csv "
            "on Symbol), or point data.universe_path at a file that has one",
            "sector": "add a sector column (GICS sector names)",
            "symbol": "add a symbol column (tickers)",
        }
        raise BadInputError(
            f"{path}: missing column(s) {missing} (found {list(raw.columns)}); "
            + "; ".join(fixes[m] for m in missing)
        )
    sym_col, sec_col, cap_col = found["symbol"], found["sector"], found["market_cap"]
    symbol = _symbols(path, fmt, raw[sym_col], sym_col)
    empty = np.flatnonzero(symbol.isna() | (symbol == ""))
    if len(empty):
        raise BadInputError(f"{path}: column '{sym_col}' is empty at {_examples(path, fmt, empty)}; fill it or drop the row")
    dup = np.flatnonzero(symbol.duplicated())
    if len(dup):
        raise BadInputError(
            f"{path}: duplicate symbol(s) at {_examples(path, fmt, dup, symbol.iloc[dup])}; keep one row per symbol"
        )
    sector = raw[sec_col].astype("string").str.strip()
    no_sector = np.flatnonzero(sector.isna() | (sector == ""))
    if len(no_sector):
        raise BadInputError(
            f"{path}: column '{sec_col}' is empty at {_examples(path, fmt, no_sector, symbol.iloc[no_sector])}; "
            "every symbol needs a sector (sector caps depend on it)"
        )
    cap = _numbers(path, fmt, raw[cap_col], cap_col)
    bad = np.flatnonzero(cap <= 0)
    if len(bad):
        raise BadInputError(
            f"{path}: column '{cap_col}' has non-positive market cap(s) at {_examples(path, fmt, bad, symbol.iloc[bad])}; "
            "market caps are in USD and must be > 0"
        )
    out = pd.DataFrame({"symbol": symbol, "sector": sector.astype(str), "market_cap": cap})
    for field in ("name", "theme"):
        if field in found:
            out[field] = raw[found[field]].astype("string").str.strip().astype(object)
    no_cap = out["market_cap"].isna()
    excluded = pd.DataFrame({"symbol": out.loc[no_cap, "symbol"], "reason": f"empty '{cap_col}'"})
    if no_cap.any():
        warnings.warn(
            f"{path}: {int(no_cap.sum())} symbol(s) set aside for an empty '{cap_col}' "
            f"(e.g. {list(excluded['symbol'][:_SHOW])}); fill their market caps to include them",
            stacklevel=3,
        )
    return out[~no_cap].reset_index(drop=True), excluded.reset_index(drop=True)
