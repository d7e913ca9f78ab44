"""Local files as a `DataProvider`: CSV or Parquet bars plus a universe file.

Why: users bring their own history (a vendor export, a research data set) and their own universe
metadata. Two bar layouts are read and told apart by their columns:

- long OHLCV: `symbol, date, open, high, low, close, volume`, one row per symbol and session;
- wide close-only: `date, SYM1, SYM2, …` (a date x symbol table of closes, as in PyPortfolioOpt's
  `stock_prices.csv`); empty cells (before a listing, after a delisting) stay missing — never
  filled — and `has_ohlc` is False, so open/high/low/volume are NaN.

The universe file needs a symbol, a sector and a market cap; headers are matched loosely so real
exports load as they are (`Symbol`, `Sector` or `GICS Sector`, `Market Cap`, `Name`/`Security`).

CSV may be compressed (`bars.csv.gz`, .bz2, .zip, .xz, .zst: pandas infers it from the suffix).

A bad row in the bars (empty or unparseable price or date, non-positive price, high < low, open or
close outside high-low by more than a cent and 1e-6 relative, duplicate symbol+date) is handled per
`data.bad_rows`: `stop` raises a `BadInputError` naming the file, the line (CSV, header = line 1) or
row (Parquet), the column and the fix; `quarantine` drops it, warns with the count and lists every
problem in `quarantined` (QUARANTINE_COLUMNS) for `data_quality.csv`. A wide table's bad cell drops
only that symbol's close that day. Structural problems (missing columns, rows out of order) and
every universe-file problem always stop. Files have no quotes: `latest_quotes` is empty and callers
fall back to the last close.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Callable, Literal, NamedTuple, Sequence

import numpy as np
import pandas as pd

from wolfkit.config import BadRows
from wolfkit.data.base import BAR_COLUMNS, QUOTE_COLUMNS
from wolfkit.data.quality import QUARANTINE_COLUMNS, empty_quarantine, quarantine_count
from wolfkit.errors import BadInputError
from wolfkit.symbols import RULE as SYMBOL_RULE
from wolfkit.symbols import normalize_symbol, normalize_symbols

Format = Literal["csv", "parquet"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
_SHOW = 5  # examples quoted in an error message
_CENT, _RELATIVE = 0.01, 1e-6  # open/close may lie this far outside high-low (source rounding), whichever is larger
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

    def __init__(self, bars_path: str | Path, universe_path: str | Path, fmt: Format = "csv",
                 bad_rows: BadRows = BadRows.STOP) -> None:
        if fmt not in ("csv", "parquet"):
            raise BadInputError(f"file format {fmt!r}: use csv or parquet")
        self.name: str = fmt
        self.bars_path = Path(bars_path)
        self.universe_path = Path(universe_path)
        self._bars, self.has_ohlc, self.quarantined = read_bars(self.bars_path, fmt, BadRows(bad_rows))
        if len(self.quarantined):
            first = self.quarantined.iloc[0]
            warnings.warn(
                f"{self.bars_path}: {quarantine_count(self.quarantined)} bad row(s) quarantined and left out "
                f"(e.g. line {first['line']} {first['field']}: {first['problem']}); they are listed in "
                "data_quality.csv beside the outputs; fix the file or set data.bad_rows: stop to be stopped instead",
                stacklevel=2,
            )
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
        if values is None:
            return ""
        v = values.iloc[k]
        return f" ({(v.item() if isinstance(v, np.generic) else v)!r})"

    shown = [_where(path, fmt, int(i)) + value(k) for k, i in enumerate(rows[:_SHOW])]
    more = f" and {len(rows) - _SHOW} more" if len(rows) > _SHOW else ""
    return ", ".join(shown) + more


_COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst")  # pandas infers these from the suffix


def _fmt_of(path: Path, fmt: Format) -> Format:
    """The format a file name says (`bars.csv.gz` is csv), else the one the parameters name."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    return "parquet" if last in (".parquet", ".pq") else "csv" if last == ".csv" else fmt


def _read_table(path: Path, fmt: Format, what: str) -> tuple[pd.DataFrame, Format]:
    """The raw table with every cell as text (CSV, plain or compressed) or as stored (Parquet)."""
    if not path.is_file():
        raise BadInputError(f"{path}: {what} file not found; check the path (data.{what}_path) or create the file")
    fmt = _fmt_of(path, fmt)
    try:
        if fmt == "parquet":
            raw = pd.read_parquet(path)
        else:
            # the header as written (read_csv would rename a repeated column to 'x.1')
            first = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
            header = [str(h) for h in first.iloc[0]] if len(first) else []
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                raise BadInputError(f"{path}: line 1: column(s) {dupes} appear more than once; keep one of each")
            raw = pd.read_csv(path, skipinitialspace=True, keep_default_na=False, na_values=_MISSING)
    except BadInputError:
        raise
    except Exception as e:
        raise BadInputError(f"{path}: cannot be read as {fmt} ({type(e).__name__}: {e}); fix or re-export the file") from None
    if raw.empty:
        raise BadInputError(f"{path}: has no data rows; fill it or point data.{what}_path at another file")
    return raw, fmt


def _numbers(path: Path, fmt: Format, raw: pd.Series, column: str) -> pd.Series:
    """Numeric values; a cell that is present but not a number is an error."""
    values, bad = _parse_numbers(raw)
    if len(bad):
        raise BadInputError(
            f"{path}: column '{column}' has non-numeric value(s) at {_examples(path, fmt, bad, raw.iloc[bad])}; "
            "use plain numbers (no currency signs or thousands separators) or leave the cell empty"
        )
    return values


def _parse_numbers(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Float values (NaN where empty or not a number) and the rows holding text that is not a number."""
    if pd.api.types.is_numeric_dtype(raw):
        return raw.astype(float), np.array([], dtype=int)
    values = pd.to_numeric(raw, errors="coerce").astype(float)
    return values, np.flatnonzero(values.isna() & raw.notna())


def _parse_dates(raw: pd.Series) -> pd.Series:
    """Session dates (tz-naive, midnight; NaT where missing or unparseable); timestamps with a zone
    are read in New York time."""
    try:
        parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601")
    except (ValueError, TypeError):  # mixed UTC offsets
        parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601", utc=True)
    if parsed.dt.tz is not None:
        parsed = parsed.dt.tz_convert("America/New_York").dt.tz_localize(None)
    return parsed.dt.normalize().astype("datetime64[ns]")


@dataclass(frozen=True)
class _Problem:
    """Rows failing one check: the sentence `stop` raises, and one short reason per row for `quarantine`."""

    rows: np.ndarray  # 0-based positions in the raw table
    field: str
    reasons: list[str]
    message: str
    symbol: str | None = None  # a wide table's bad cell: its column; else the row's symbol


class _Checks:
    """Collects row problems in check order; `stop` raises the first, `quarantine` lists them all."""

    def __init__(self, path: Path, fmt: Format) -> None:
        self.path, self.fmt = path, fmt
        self.problems: list[_Problem] = []

    def add(self, rows: np.ndarray, field: str, reason: Callable[[int], str], what: str, fix: str,
            values: pd.Series | None = None, symbol: str | None = None) -> None:
        if len(rows):
            shown = _examples(self.path, self.fmt, rows, None if values is None else values.iloc[rows])
            reasons = [reason(int(i)) for i in rows]
            self.problems.append(_Problem(rows, field, reasons, f"{what} at {shown}; {fix}", symbol))

    def bad(self, n: int) -> np.ndarray:
        """Rows with any problem so far (a boolean mask over the `n` raw rows)."""
        mask = np.zeros(n, dtype=bool)
        for p in self.problems:
            mask[p.rows] = True
        return mask

    def settle(self, bad_rows: BadRows, symbols: pd.Series, dates: pd.Series, raw_dates: pd.Series) -> pd.DataFrame:
        """Raise the first problem (`stop`) or return every one as QUARANTINE_COLUMNS rows (dates as
        YYYY-MM-DD, or the cell as written where it did not parse)."""
        if self.problems and bad_rows == BadRows.STOP:
            raise BadInputError(
                f"{self.path}: {self.problems[0].message} (or set data.bad_rows: quarantine to leave such rows out)"
            )
        frames = [pd.DataFrame({
            "file": str(self.path),
            "line": p.rows + (2 if self.fmt == "csv" else 1),
            "symbol": p.symbol if p.symbol is not None else symbols.iloc[p.rows].fillna("").to_numpy(),
            "date": _date_text(dates.iloc[p.rows], raw_dates.iloc[p.rows]).to_numpy(),
            "field": p.field,
            "problem": p.reasons,
        }) for p in self.problems]
        if not frames:
            return empty_quarantine()
        out = pd.concat(frames, ignore_index=True).astype({"line": int, "symbol": str, "date": str})
        return out.sort_values(["line", "field"], kind="stable", ignore_index=True)[QUARANTINE_COLUMNS]


def _date_text(parsed: pd.Series, raw: pd.Series) -> pd.Series:
    """Dates as YYYY-MM-DD for the quarantine list; the cell as written where it did not parse."""
    return parsed.dt.strftime("%Y-%m-%d").where(parsed.notna(), raw.astype(str))


class BarsFile(NamedTuple):
    """A bars file as read: validated long bars, whether it has open/high/low/volume, and the rows
    quarantined under `data.bad_rows: quarantine` (QUARANTINE_COLUMNS; empty under `stop`)."""

    bars: pd.DataFrame
    has_ohlc: bool
    quarantined: pd.DataFrame


def read_bars(path: Path, fmt: Format = "csv", bad_rows: BadRows = BadRows.STOP) -> BarsFile:
    """Validated long bars (BAR_COLUMNS, sorted by symbol and date; symbol categorical)."""
    raw, fmt = _read_table(path, fmt, "bars")
    names = [_norm(c) for c in raw.columns]
    if "symbol" in names:
        bars, quarantined = _read_long(path, fmt, raw.set_axis(names, axis=1), bad_rows)
        return BarsFile(bars, has_ohlc=True, quarantined=quarantined)
    if names[0] in ("date", "unnamed_0"):  # a date-indexed frame saved by pandas has no index header
        bars, quarantined = _read_wide(path, fmt, raw.set_axis(["date", *raw.columns[1:]], axis=1), bad_rows)
        return BarsFile(bars, has_ohlc=False, quarantined=quarantined)
    missing = [c for c in BAR_COLUMNS if c not in names]
    raise BadInputError(
        f"{path}: missing column(s) {missing}; bars need either the long layout "
        f"({', '.join(BAR_COLUMNS)}) or the wide close-only layout (date, then one column per symbol)"
    )


def _price_checks(checks: _Checks, raw: pd.Series, values: pd.Series, bad_text: np.ndarray, column: str,
                  symbol: str | None = None) -> None:
    """Not a number, empty (long layout only: a wide table's empty cell means not listed) and
    non-positive: in that order, as `stop` reports them."""
    field = "close" if symbol else column
    checks.add(bad_text, field, lambda i: f"not a number: {raw.iloc[i]!r}",
               f"column '{column}' has non-numeric value(s)",
               "use plain numbers (no currency signs or thousands separators) or leave the cell empty", raw, symbol)
    if symbol is None:
        empty = np.setdiff1d(np.flatnonzero(values.isna()), bad_text)
        checks.add(empty, field, lambda i: "empty", f"column '{column}' is empty",
                   "every row needs a price (drop the row if the symbol did not trade)")
    checks.add(np.flatnonzero(values <= 0), field, lambda i: f"non-positive: {values.iloc[i]:g}",
               f"column '{column}' has non-positive price(s)", "prices must be > 0", values, symbol)


def _read_long(path: Path, fmt: Format, raw: pd.DataFrame, bad_rows: BadRows) -> tuple[pd.DataFrame, pd.DataFrame]:
    missing = [c for c in BAR_COLUMNS if c not in raw.columns]
    if missing:
        raise BadInputError(
            f"{path}: missing column(s) {missing} (found {list(raw.columns)}); long bars need "
            f"{', '.join(BAR_COLUMNS)}, or use the wide close-only layout (date, SYM1, SYM2, …)"
        )
    checks = _Checks(path, fmt)
    symbol = _symbols(path, fmt, raw["symbol"], "symbol")  # text that is not a ticker always stops
    checks.add(np.flatnonzero(symbol.isna() | (symbol == "")), "symbol", lambda i: "empty",
               "column 'symbol' is empty", "fill it or drop the row")
    dates = _parse_dates(raw["date"])
    checks.add(np.flatnonzero(dates.isna()), "date", lambda i: f"missing or unparseable: {raw['date'].iloc[i]!r}",
               "column 'date' has missing or unparseable date(s)", "write dates as YYYY-MM-DD", raw["date"])
    bars = pd.DataFrame({"symbol": symbol, "date": dates})
    for col in PRICE_COLUMNS:
        bars[col], bad_text = _parse_numbers(raw[col])
        _price_checks(checks, raw[col], bars[col], bad_text, col)
    bars["volume"], bad_text = _parse_numbers(raw["volume"])
    checks.add(bad_text, "volume", lambda i: f"not a number: {raw['volume'].iloc[i]!r}",
               "column 'volume' has non-numeric value(s)", "use plain numbers or leave the cell empty", raw["volume"])
    checks.add(np.flatnonzero(bars["volume"] < 0), "volume", lambda i: f"negative: {bars['volume'].iloc[i]:g}",
               "column 'volume' is negative", "volumes must be >= 0")
    high, low = bars["high"], bars["low"]
    checks.add(np.flatnonzero(high < low), "high", lambda i: f"high {high.iloc[i]:g} < low {low.iloc[i]:g}",
               "high < low", "check for swapped high/low columns")
    tol = np.maximum(_CENT, _RELATIVE * high)  # rounding in the source is not dirt
    sound = ~checks.bad(len(bars))  # a row already wrong (empty, non-positive, high < low) is listed once
    for col in ("open", "close"):
        v = bars[col]
        outside = np.flatnonzero(sound & ((v > high + tol) | (v < low - tol)).to_numpy())

        def out_of_range(i: int, col: str = col, v: pd.Series = v) -> str:
            return f"{col} {v.iloc[i]:g} outside low-high {low.iloc[i]:g}-{high.iloc[i]:g}"

        checks.add(outside, col, out_of_range, f"{col} outside the day's low-high range",
                   "check the row against another source or drop it")
    bad = checks.bad(len(bars))
    good = np.flatnonzero(~bad)  # a copy of a bad row is not a duplicate: the first good one is kept
    keys = bars[["symbol", "date"]].iloc[good] if bad.any() else bars[["symbol", "date"]]
    dup = good[keys.duplicated(keep="first").to_numpy()]
    if len(dup):
        copies = keys[keys.duplicated(keep=False).to_numpy()]
        first = copies.reset_index().groupby(["symbol", "date"])["index"].transform("first")
        of = dict(zip(copies.index, first))
        checks.add(dup, "date", lambda i: f"duplicate of {_where(path, fmt, of[i])}",
                   "duplicate (symbol, date) rows",
                   f"e.g. {symbol.iloc[dup[0]]} on {dates.iloc[dup[0]].date()}; keep one row per symbol and date")
    quarantined = checks.settle(bad_rows, symbol, dates, raw["date"])
    bad = checks.bad(len(bars))
    if bad.any():
        bars = bars.loc[~bad]
    previous = bars.groupby("symbol", sort=False)["date"].shift()
    back = np.flatnonzero(bars["date"] < previous)
    if len(back):
        i = back[0]
        lines = bars.index.to_numpy()[back]  # raw row positions: the lines the user sees
        raise BadInputError(
            f"{path}: dates out of order at {_examples(path, fmt, lines)}: {bars['symbol'].iloc[i]} "
            f"{bars['date'].iloc[i].date()} comes after {previous.iloc[i].date()}; sort the file by symbol, then date"
        )
    bars = bars.sort_values(["symbol", "date"], kind="stable", ignore_index=True)
    bars["symbol"] = bars["symbol"].astype("category")
    return bars[BAR_COLUMNS], quarantined


def _read_wide(path: Path, fmt: Format, raw: pd.DataFrame, bad_rows: BadRows) -> tuple[pd.DataFrame, pd.DataFrame]:
    symbols = []
    for c in raw.columns[1:]:
        try:
            symbols.append(normalize_symbol(str(c)))
        except ValueError as e:
            raise BadInputError(f"{path}: column header {str(c)!r}: {e}") from None
    dupes = sorted({s for s in symbols if symbols.count(s) > 1})
    if dupes:
        raise BadInputError(f"{path}: symbol column(s) {dupes} appear more than once; keep one column per symbol")
    checks = _Checks(path, fmt)
    dates = _parse_dates(raw["date"])
    checks.add(np.flatnonzero(dates.isna()), "date", lambda i: f"missing or unparseable: {raw['date'].iloc[i]!r}",
               "column 'date' has missing or unparseable date(s)", "write dates as YYYY-MM-DD", raw["date"])
    dup = np.flatnonzero(dates.duplicated() & dates.notna())
    checks.add(dup, "date", lambda i: "duplicate date", "duplicate date(s)", "keep one row per date", raw["date"])
    bad_dates = checks.bad(len(raw))  # a bad date drops its whole row
    closes = {}
    for col, sym in zip(raw.columns[1:], symbols):
        closes[sym], bad_text = _parse_numbers(raw[col])
        n = len(checks.problems)
        _price_checks(checks, raw[col], closes[sym], bad_text, col, symbol=sym)
        for p in checks.problems[n:]:  # a bad cell drops that symbol's close that day, not the whole row
            closes[sym].iloc[p.rows] = np.nan
    wide = pd.DataFrame(closes)
    quarantined = checks.settle(bad_rows, pd.Series([""] * len(raw)), dates, raw["date"])
    keep = ~bad_dates
    wide, dates = wide.loc[keep], dates.loc[keep]
    back = np.flatnonzero(dates.diff() < pd.Timedelta(0))
    if len(back):
        rows = dates.index.to_numpy()[back]
        raise BadInputError(
            f"{path}: dates out of order at {_examples(path, fmt, rows, raw['date'].iloc[rows])}; sort the rows by date"
        )
    wide.index = dates.to_numpy()
    long = wide.stack(future_stack=True).dropna()  # empty cells (not listed yet) stay absent
    bars = pd.DataFrame({
        "symbol": pd.Categorical(long.index.get_level_values(1), categories=sorted(symbols)),
        "date": long.index.get_level_values(0),
        "close": long.to_numpy(),
    })
    for col in ("open", "high", "low", "volume"):
        bars[col] = np.nan
    return bars.sort_values(["symbol", "date"], kind="stable", ignore_index=True)[BAR_COLUMNS], quarantined


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
