"""Signals: per-symbol numbers read off a price panel, which `wolfkit.scan` ranks across the universe.

A signal answers one question about each symbol's recent bars ("how strong is its trend?") with
one number at the panel's last date; higher always means *more attractive to buy*. Signals are
time-series only: each symbol's value depends on that symbol's bars alone, so the scanner can compute
them in chunks of symbols on any executor and rank the whole universe afterwards.

Built-in signals are registered by name (`momentum`, `trend`, `relative_volume`,
`vol_adjusted_return`, `breakout`, `mean_reversion`, and single-horizon `momentum_1m/3m/6m/12m`).
A user adds their own in the parameters by dotted path, `package.module:ClassName`: a class with
`name`, `needs_ohlc` and `compute(panel)` whose constructor takes no arguments; optionally
`compute_panel(windows)` (`PanelSignal`), the same values for every window of a long panel at once,
which the backtest uses (without it, the backtest calls `compute` once per session).
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Callable, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from wolfkit.errors import BadInputError
from wolfkit.rolling import RangeMax, ffill, next_seen, sums_since

PANEL_FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Panel:
    """Daily bars as aligned dates x symbols float arrays, built once from the long bars frame.

    Rows are `dates` (ascending, tz-naive session dates), columns are `symbols`; a missing bar is
    NaN in every field. On a close-only source (`has_ohlc` False) open/high/low/volume are all NaN.
    The scanner forward-fills `close` across the (short) gaps it tolerates before signals see it.
    """

    dates: pd.DatetimeIndex
    symbols: pd.Index
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    has_ohlc: bool = True

    @classmethod
    def from_bars(cls, bars: pd.DataFrame, has_ohlc: bool = True) -> Panel:
        """Pivot a long bars frame (`wolfkit.data.base.BAR_COLUMNS`) into a panel, vectorised.

        Dates are the union of the frame's dates; a (symbol, date) pair given twice is an error; a
        bar without a close counts as missing in every field.
        """
        missing = [c for c in ("symbol", "date", *PANEL_FIELDS) if c not in bars.columns]
        if missing:
            raise BadInputError(f"daily bars: missing column(s) {missing}; expected {['symbol', 'date', *PANEL_FIELDS]}")
        di, dates = pd.factorize(pd.to_datetime(bars["date"], cache=False).to_numpy(), sort=True)
        si, symbols = pd.factorize(bars["symbol"].to_numpy(), sort=True)
        flat = di.astype(np.int64) * len(symbols) + si
        counts = np.bincount(flat, minlength=len(dates) * len(symbols))
        if len(flat) and counts.max() > 1:
            dup = bars.iloc[np.flatnonzero(counts[flat] > 1)[0]]
            raise BadInputError(
                f"daily bars: symbol {dup['symbol']} has more than one bar on {pd.Timestamp(dup['date']).date()}; "
                "keep one bar per symbol and date"
            )
        shape = (len(dates), len(symbols))
        arrays = {}
        for f in PANEL_FIELDS:
            a = np.full(shape, np.nan)
            a[di, si] = pd.to_numeric(bars[f], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            arrays[f] = a
        no_close = np.isnan(arrays["close"])
        for f in PANEL_FIELDS:  # a bar without a close is no bar: nothing may read its other fields
            arrays[f][no_close] = np.nan
        return cls(pd.DatetimeIndex(dates), pd.Index(symbols.astype(str), name="symbol"), has_ohlc=has_ohlc, **arrays)

    @property
    def shape(self) -> tuple[int, int]:
        return self.close.shape

    def rows(self, lo: int, hi: int) -> Panel:
        """Rows lo .. hi-1 (all symbols): a scan window, or what a block of sessions reads."""
        return Panel(self.dates[lo:hi], self.symbols, has_ohlc=self.has_ohlc,
                     **{f: getattr(self, f)[lo:hi] for f in PANEL_FIELDS})

    def take(self, columns: np.ndarray | slice) -> Panel:
        """The same dates for a subset of symbols (positions or a slice): the unit of chunked work."""
        return Panel(
            self.dates, self.symbols[columns], has_ohlc=self.has_ohlc,
            **{f: getattr(self, f)[:, columns] for f in PANEL_FIELDS},
        )


@runtime_checkable
class Signal(Protocol):
    """One per-symbol number; higher means more attractive to buy.

    `compute` returns a Series indexed by `panel.symbols` holding the value at the panel's LAST date
    (NaN where it cannot be computed, e.g. too little history). It must use each symbol's own
    column only (no cross-sectional work: ranking happens in the scanner over the whole universe).
    `needs_ohlc` True means the signal reads open/high/low/volume and is unavailable on close-only data.
    """

    name: str
    needs_ohlc: bool

    def compute(self, panel: Panel) -> pd.Series: ...


@runtime_checkable
class PanelSignal(Signal, Protocol):
    """A signal that can also give its value for every scan window of a long panel at once.

    `compute_panel(windows)` returns a dates x symbols array whose row t is exactly what `compute`
    returns on the window of `windows.lookback` rows ending at row t (close forward-filled inside
    that window). The backtest scans every session from it; a signal without it still works there,
    through one `compute` call per session (slower).
    """

    def compute_panel(self, windows: Windows) -> np.ndarray: ...


@dataclass(frozen=True)
class Windows:
    """Every scan window of a long panel at once: row t stands for the `lookback` rows ending at t.

    A scan window forward-fills the close only from its own first row, so a symbol whose last bar
    before the window is older than the window has no close until its first bar inside it. `first`
    holds that row for each window and symbol (the row count when none); `close_back`, `sums` and
    `log_return_std` give what `compute` sees on each window, computed once over the whole panel.
    """

    panel: Panel
    lookback: int
    close: np.ndarray
    first: np.ndarray

    @classmethod
    def of(cls, panel: Panel, lookback: int) -> Windows:
        """The windows of `lookback` rows over `panel` (raw bars: the close is not forward-filled)."""
        first = next_seen(~np.isnan(panel.close))[cls._starts(panel.shape[0], lookback)]
        return cls(panel, lookback, ffill(panel.close), first)

    @staticmethod
    def _starts(rows: int, lookback: int) -> np.ndarray:
        return np.maximum(np.arange(rows) + 1 - lookback, 0)

    @property
    def start(self) -> np.ndarray:
        """First row of the window ending at each row, as a column (rows x 1)."""
        return self._starts(self.panel.shape[0], self.lookback)[:, None]

    @property
    def row(self) -> np.ndarray:
        """Each window's last row, as a column (rows x 1)."""
        return np.arange(self.panel.shape[0])[:, None]

    def close_back(self, lag: int) -> np.ndarray:
        """The window's (forward-filled) close `lag` rows before its last row; NaN outside the window."""
        rows = self.close.shape[0]
        out = np.full(self.close.shape, np.nan)
        if lag < rows:
            out[lag:] = self.close[:rows - lag]
        return np.where(self.row - lag >= self.first, out, np.nan)

    def sums(self, a: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Sum and count of the values present of `a` over the window's last `length` rows (raw `a`)."""
        return sums_since(a, np.maximum(self.start, self.row - length + 1))

    def close_sum(self, length: int) -> np.ndarray:
        """Sum of the window's close over its last `length` rows; NaN unless all `length` are present."""
        s, n = sums_since(self.close, self.row - length + 1)
        return np.where((self.row - length + 1 >= self.first) & (n == length), s, np.nan)

    def log_return_std(self, h: int) -> np.ndarray:
        """`_daily_log_std(close, h)` of every window: std of the last h daily log returns (at least h/2)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            lc = np.log(self.close)
        d = np.full(lc.shape, np.nan)
        d[1:] = lc[1:] - lc[:-1]
        lo = np.maximum(np.maximum(self.start + 1, self.row - h + 1), self.first + 1)
        s1, n = sums_since(d, lo)
        s2, _ = sums_since(d * d, lo)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = (s2 - s1 * s1 / n) / (n - 1)
        return np.where(n >= max(2, h // 2), np.sqrt(np.maximum(var, 0.0)), np.nan)

    def ratio_log(self, h: int) -> np.ndarray:
        """`_last_ratio_log(close, h)` of every window: log of the close over the close h rows earlier."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(self.close_back(0) / self.close_back(h))


def signal_values(signal: Signal, filled: Panel) -> np.ndarray:
    """One signal's values at the panel's last date, by symbol (`filled`: close forward-filled)."""
    if signal.needs_ohlc and not filled.has_ohlc:
        return np.full(filled.shape[1], np.nan)
    values = signal.compute(filled)
    if not isinstance(values, pd.Series):
        raise BadInputError(
            f"signal {signal.name!r}: compute() must return a pd.Series indexed by symbol (the value at "
            f"the panel's last date), got {type(values).__name__}"
        )
    return values.astype(float).reindex(filled.symbols).to_numpy()


_REGISTRY: dict[str, Callable[[], Signal]] = {}


def register(name: str) -> Callable[[Callable[[], Signal]], Callable[[], Signal]]:
    """Register a zero-argument factory (usually a class) under `name`."""

    def deco(factory: Callable[[], Signal]) -> Callable[[], Signal]:
        if name in _REGISTRY:
            raise ValueError(f"signal {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def available_signals() -> list[str]:
    """Names of the registered signals."""
    return sorted(_REGISTRY)


def get_signal(name_or_path: str) -> Signal:
    """A signal instance from a registered name or a dotted path `package.module:ClassName`."""
    if name_or_path in _REGISTRY:
        return _REGISTRY[name_or_path]()
    module_name, colon, attr = name_or_path.partition(":")
    if not colon or not module_name or not attr:
        raise BadInputError(
            f"scan.signals: unknown signal {name_or_path!r}; use one of {available_signals()} "
            "or a dotted path package.module:ClassName"
        )
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise BadInputError(
            f"scan.signals: cannot load {name_or_path!r} ({e}); the module must be importable "
            "and define the class"
        ) from None
    try:
        sig = obj()
    except TypeError as e:
        raise BadInputError(f"scan.signals: {name_or_path!r} must be constructible with no arguments ({e})") from None
    if not isinstance(sig, Signal) or not isinstance(sig.name, str) or not sig.name:
        raise BadInputError(
            f"scan.signals: {name_or_path!r} is not a Signal: it needs a non-empty `name`, "
            "`needs_ohlc` and `compute(panel) -> pd.Series`"
        )
    return sig


# ---- helpers: values at the last row, NaN-aware, without warnings on all-NaN columns ----


def _last_ratio_log(close: np.ndarray, h: int) -> np.ndarray:
    """log(close[-1] / close[-1-h]); NaN when the panel is shorter than h+1 rows or a value is missing."""
    if close.shape[0] <= h:
        return np.full(close.shape[1], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(close[-1] / close[-1 - h])


def _nanmean(a: np.ndarray, axis: int = 0, min_count: int = 1) -> np.ndarray:
    n = np.sum(~np.isnan(a), axis=axis)
    s = np.nansum(a, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n >= min_count, s / np.maximum(n, 1), np.nan)


def _daily_log_std(close: np.ndarray, h: int) -> np.ndarray:
    """Std of daily log returns over the last h returns (needs at least h/2 of them)."""
    w = close[-h - 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.diff(np.log(w), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = np.nanstd(r, axis=0, ddof=1)
    return np.where(np.sum(~np.isnan(r), axis=0) >= max(2, h // 2), sd, np.nan)


def _series(panel: Panel, values: np.ndarray) -> pd.Series:
    return pd.Series(values, index=panel.symbols, dtype=float)


class Momentum:
    """Average monthly log-return rate over several horizons (21, 63, 126 sessions by default).

    Each horizon's log return is scaled to 21 sessions before averaging, so the recent month and
    the longer trend count alike; horizons a symbol is too young for are left out of its average.
    """

    needs_ohlc = False

    def __init__(self, horizons: tuple[int, ...] = (21, 63, 126), name: str = "momentum") -> None:
        self.horizons = horizons
        self.name = name

    def compute(self, panel: Panel) -> pd.Series:
        rates = np.stack([_last_ratio_log(panel.close, h) * 21.0 / h for h in self.horizons])
        return _series(panel, _nanmean(rates))

    def compute_panel(self, windows: Windows) -> np.ndarray:
        return _nanmean(np.stack([windows.ratio_log(h) * 21.0 / h for h in self.horizons]))


register("momentum")(Momentum)
for _label, _h in (("1m", 21), ("3m", 63), ("6m", 126), ("12m", 251)):
    register(f"momentum_{_label}")(partial(Momentum, horizons=(_h,), name=f"momentum_{_label}"))


@register("trend")
class Trend:
    """Price against its moving averages: mean of log(close / SMA_w) over w in (20, 50, 200).

    A window needs a full w closes to count; a symbol too young for the 200-day average is judged
    on the shorter ones.
    """

    name = "trend"
    needs_ohlc = False
    windows = (20, 50, 200)

    def compute(self, panel: Panel) -> pd.Series:
        c = panel.close
        parts = []
        for w in self.windows:
            win = c[-w:]
            sma = _nanmean(win, min_count=w) if c.shape[0] >= w else np.full(c.shape[1], np.nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                parts.append(np.log(c[-1] / sma))
        return _series(panel, _nanmean(np.stack(parts)))

    def compute_panel(self, windows: Windows) -> np.ndarray:
        last = windows.close_back(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            parts = [np.log(last / (windows.close_sum(w) / w)) for w in self.windows]
        return _nanmean(np.stack(parts))


@register("relative_volume")
class RelativeVolume:
    """Volume of the last 5 sessions over the last 50, signed by the 5-session price move.

    Heavy volume on a rise (accumulation) ranks high, heavy volume on a fall (distribution) ranks
    low. Needs volume, so it is unavailable on close-only data.
    """

    name = "relative_volume"
    needs_ohlc = True
    short, long = 5, 50

    def compute(self, panel: Panel) -> pd.Series:
        v = panel.volume
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = _nanmean(v[-self.short:], min_count=3) / _nanmean(v[-self.long:], min_count=20)
        ratio = np.where(np.isfinite(ratio), ratio, np.nan)
        move = _last_ratio_log(panel.close, self.short)
        return _series(panel, np.sign(move) * ratio)

    def compute_panel(self, windows: Windows) -> np.ndarray:
        (s5, n5), (s50, n50) = windows.sums(windows.panel.volume, self.short), windows.sums(windows.panel.volume, self.long)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (np.where(n5 >= 3, s5 / np.maximum(n5, 1), np.nan)
                     / np.where(n50 >= 20, s50 / np.maximum(n50, 1), np.nan))
        ratio = np.where(np.isfinite(ratio), ratio, np.nan)
        return np.sign(windows.ratio_log(self.short)) * ratio


@register("vol_adjusted_return")
class VolAdjustedReturn:
    """The 63-session log return divided by its volatility (daily std x sqrt(63)): a t-statistic."""

    name = "vol_adjusted_return"
    needs_ohlc = False
    horizon = 63

    def compute(self, panel: Panel) -> pd.Series:
        h = self.horizon
        with np.errstate(divide="ignore", invalid="ignore"):
            z = _last_ratio_log(panel.close, h) / (_daily_log_std(panel.close, h) * np.sqrt(h))
        return _series(panel, np.where(np.isfinite(z), z, np.nan))

    def compute_panel(self, windows: Windows) -> np.ndarray:
        h = self.horizon
        with np.errstate(divide="ignore", invalid="ignore"):
            z = windows.ratio_log(h) / (windows.log_return_std(h) * np.sqrt(h))
        return np.where(np.isfinite(z), z, np.nan)


@register("breakout")
class Breakout:
    """Proximity to the 52-week (252-session) closing high: close / max(close) - 1, at most 0.

    Closing highs, not intraday highs, so the signal works on close-only data too; a panel shorter
    than a year uses the whole panel.
    """

    name = "breakout"
    needs_ohlc = False
    window = 252

    def compute(self, panel: Panel) -> pd.Series:
        c = panel.close
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            top = np.nanmax(c[-self.window:], axis=0)
        return _series(panel, c[-1] / top - 1)

    def compute_panel(self, windows: Windows) -> np.ndarray:
        row = np.broadcast_to(windows.row, windows.first.shape)
        lo = np.maximum(np.maximum(windows.start, windows.row - self.window + 1), windows.first)
        top = RangeMax(windows.close).query(lo, row)
        with np.errstate(divide="ignore", invalid="ignore"):
            return windows.close_back(0) / top - 1


@register("mean_reversion")
class MeanReversion:
    """Short-term reversal: minus the 5-session log return in units of its 20-day volatility.

    A sharp 5-day drop scores high (a bounce candidate), a sharp 5-day pop scores low.
    """

    name = "mean_reversion"
    needs_ohlc = False
    horizon, vol_window = 5, 20

    def compute(self, panel: Panel) -> pd.Series:
        sd = _daily_log_std(panel.close, self.vol_window) * np.sqrt(self.horizon)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = -_last_ratio_log(panel.close, self.horizon) / sd
        return _series(panel, np.where(np.isfinite(z), z, np.nan))

    def compute_panel(self, windows: Windows) -> np.ndarray:
        sd = windows.log_return_std(self.vol_window) * np.sqrt(self.horizon)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = -windows.ratio_log(self.horizon) / sd
        return np.where(np.isfinite(z), z, np.nan)
