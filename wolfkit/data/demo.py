"""The demo market: an embedded, offline, synthetic US equity market, deterministic from a seed.

Why: every part of wolfkit (scan, pack, execute, replay, notebooks) must run on a fresh machine with
no keys and no network, on data that looks and behaves like the real thing — fat tails, volatility
clustering, sector co-movement, overnight gaps, trending and mean-reverting names, volume that
rises with big moves — so that a scanner finds real differences and an executor meets real gaps.

The universe is ~200 real, well-known US tickers (`demo_universe.csv`: sector, theme, approximate
market cap and price level); `DemoMarket(size=N)` scales it to N symbols with generated tickers
(`SYN0001`, …). Prices are **synthetic**: every output made from them prints `SYNTHETIC_NOTICE`.

Determinism: a bar depends only on (seed, symbol, session). Sessions run from a fixed epoch
(`EPOCH`); every random component has its own stream, per block of 64 symbols, drawn as
(time x symbols) arrays so a longer range only appends rows, and a symbol's columns are the same
whatever the universe size or the requested range. Returns follow a multi-factor model:

    r = mu + beta * market + gamma * sector + idiosyncratic
    idiosyncratic: Student-t shocks with GARCH(1,1) variance, an AR(1) term, a slow trend regime
                   and a pull back to the name's trend line (strong for mean-reverting names)

The close-to-close return is split into an overnight gap and an intraday part; highs/lows extend
the open-close body by a volatility-scaled range. Prices sit on Alpaca's tick grid (cents at or
above $1, 1/100 cent below). Minute bars and quotes are derived from the daily bar on demand.
"""

from __future__ import annotations

import zlib
from datetime import date, datetime
from importlib import resources
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from wolfkit import calendar
from wolfkit.config import CAP_TIERS
from wolfkit.data.base import BAR_COLUMNS, MINUTE_COLUMNS, QUOTE_COLUMNS
from wolfkit.errors import BadInputError

SYNTHETIC_NOTICE = "Prices are synthetic (wolfkit demo market) — not real market data."
EPOCH = date(2021, 1, 4)  # first session of every demo market; bars never depend on the range asked

SECTORS = (
    "Communication Services",
    "Consumer Discretionary",
    "Consumer Staples",
    "Energy",
    "Financials",
    "Health Care",
    "Industrials",
    "Information Technology",
    "Materials",
    "Real Estate",
    "Utilities",
)

_BLOCK = 64  # symbols per random stream: a symbol's draws do not depend on its neighbours
_SYN_BASE = 1 << 20  # stream ids of generated symbols start here (real ones are their row number)
_TICK = 10_000  # prices are stored as integer multiples of $0.0001
_MONTH = 21  # sessions per trend-regime step

# Component ids: each random component draws from its own stream.
(_MARKET, _SECTOR, _IDIO, _IDIO_CHI2, _TREND, _GAP, _RANGE, _VOLUME, _TRAITS_Z, _TRAITS_U, _SYNTH,
 _MINUTE, _QUOTE) = range(1, 14)

# Per-tier defaults: annual idiosyncratic volatility, daily turnover (share of market cap),
# quoted spread in basis points, and the log-uniform cap and price ranges of generated names.
_TIER_VOL = {"mega": 0.17, "large": 0.23, "mid": 0.33, "small": 0.45, "micro": 0.65}
_TIER_TURNOVER = {"mega": 0.005, "large": 0.007, "mid": 0.011, "small": 0.018, "micro": 0.03}
_TIER_SPREAD_BPS = {"mega": 1.0, "large": 3.0, "mid": 8.0, "small": 20.0, "micro": 60.0}
_TIER_CAP = {"mega": (200e9, 3e12), "large": (10e9, 200e9), "mid": (2e9, 10e9),
             "small": (300e6, 2e9), "micro": (20e6, 300e6)}
_TIER_PRICE = {"mega": (60, 600), "large": (20, 400), "mid": (8, 150), "small": (2, 60), "micro": (0.6, 12)}
_SYN_TIER_P = np.array([0.04, 0.26, 0.26, 0.24, 0.20])  # mega, large, mid, small, micro
_HOT_THEMES = {"Quantum": 1.35, "Crypto": 1.35, "Space": 1.25, "EV": 1.2, "Biotech": 1.2,
               "eVTOL": 1.25, "Nuclear": 1.15, "Uranium": 1.15, "Hydrogen": 1.3, "AI/Software": 1.1}
_CALM_SECTORS = {"Utilities": 0.7, "Consumer Staples": 0.75, "Real Estate": 0.85}

_MARKET_VOL, _MARKET_DRIFT, _SECTOR_VOL = 0.16, 0.07, 0.10  # annual
_DF = 5.0  # Student-t degrees of freedom of the shocks (kurtosis 9 before volatility clustering)


def _stream(seed: int, component: int, *keys: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed % 2**64, component, *keys])))


def _by_block(
    seed: int, component: int, gids: np.ndarray, draw: Callable[[np.random.Generator], np.ndarray]
) -> np.ndarray:
    """Columns `gids` of per-block draws: `draw(rng)` returns (rows, _BLOCK) for one block."""
    blocks = gids // _BLOCK
    out = None
    for b in np.unique(blocks):
        part = draw(_stream(seed, component, int(b)))
        if out is None:
            out = np.empty((part.shape[0], len(gids)), dtype=part.dtype)
        cols = np.flatnonzero(blocks == b)
        slots = gids[cols] % _BLOCK
        if cols[-1] - cols[0] == len(cols) - 1 and slots[-1] - slots[0] == len(cols) - 1:
            out[:, cols[0]:cols[-1] + 1] = part[:, slots[0]:slots[-1] + 1]  # the common, contiguous case
        else:
            out[:, cols] = part[:, slots]
    if out is None:  # no columns asked for: an empty block of the right height
        part = draw(_stream(seed, component, 0))
        return np.empty((part.shape[0], 0), dtype=part.dtype)
    return out


def _to_ticks(log_price: np.ndarray) -> np.ndarray:
    """exp(log_price) rounded to Alpaca's tick (cents at or above $1, $0.0001 below), as integer
    1/10000 dollars. Monotone, so rounding keeps low <= open, close <= high."""
    price = np.exp(log_price)
    ticks = np.rint(price * 100).clip(0, np.iinfo(np.int32).max // 100).astype(np.int32)
    ticks *= 100
    cheap = price < 1
    if cheap.any():
        ticks[cheap] = np.maximum(np.rint(price[cheap] * _TICK), 1)
    return ticks


def _symbol_key(symbol: str) -> int:
    return zlib.crc32(symbol.encode())


def _real_universe() -> pd.DataFrame:
    with resources.files("wolfkit.data").joinpath("demo_universe.csv").open() as f:
        return pd.read_csv(f)


def _spread_order(u: pd.DataFrame) -> np.ndarray:
    """Row order taking the biggest remaining name of each sector in turn, so a prefix spans sectors."""
    rank = u.groupby("sector")["market_cap"].rank(method="first", ascending=False).to_numpy()
    return np.lexsort((u["sector"].map(SECTORS.index).to_numpy(), rank))


def _synthetic_universe(seed: int, count: int, real: pd.DataFrame) -> pd.DataFrame:
    """`count` generated names, SYN0001…, with sectors, themes, caps and prices spread over tiers."""
    k = np.arange(count)
    u = _by_block(seed, _SYNTH, k, lambda g: g.random((5, _BLOCK)))
    sector = np.array(SECTORS)[np.minimum((u[0] * len(SECTORS)).astype(int), len(SECTORS) - 1)]
    tier = np.array(CAP_TIERS)[np.searchsorted(np.cumsum(_SYN_TIER_P), u[1] * _SYN_TIER_P.sum())]
    themes = {s: sorted(real.loc[real["sector"] == s, "theme"].unique()) for s in SECTORS}

    def loguniform(ranges: dict, x: np.ndarray) -> np.ndarray:
        lo = np.array([ranges[t][0] for t in tier])
        hi = np.array([ranges[t][1] for t in tier])
        return np.exp(np.log(lo) + x * (np.log(hi) - np.log(lo)))

    cap = np.round(loguniform(_TIER_CAP, u[2]), -6)
    price = np.round(loguniform(_TIER_PRICE, u[3]), 2)
    theme = [themes[s][int(x * len(themes[s]))] for s, x in zip(sector, u[4])]
    symbol = [f"SYN{i + 1:04d}" for i in k]
    return pd.DataFrame({
        "symbol": symbol, "name": [f"Synthetic {s} {i + 1}" for s, i in zip(sector, k)],
        "sector": sector, "theme": theme, "market_cap": cap, "price": price,
    })


class DemoMarket:
    """The embedded synthetic market (`DataProvider`): daily OHLCV, minute bars and quotes."""

    synthetic = True
    has_ohlc = True

    def __init__(self, seed: int = 7, size: int | None = None, end: date | None = None) -> None:
        if size is not None and size < 1:
            raise BadInputError(f"demo market size {size}: use demo:N with N a positive integer")
        self.seed = int(seed)
        self.size = size
        self.name = "demo" if size is None else f"demo:{size}"
        self.end = min(end or calendar.today_ny(), calendar.last_session())
        real = _real_universe()
        if size is None:
            table, gids = real, np.arange(len(real))
        elif size <= len(real):
            rows = np.sort(_spread_order(real)[:size])
            table, gids = real.iloc[rows], rows
        else:
            extra = _synthetic_universe(self.seed, size - len(real), real)
            table = pd.concat([real, extra], ignore_index=True)
            gids = np.concatenate([np.arange(len(real)), _SYN_BASE + np.arange(size - len(real))])
        self._table = table.reset_index(drop=True)
        self._gids = gids.astype(np.int64)
        self._col = {s: i for i, s in enumerate(self._table["symbol"])}
        self._tier = np.array([_tier(c) for c in self._table["market_cap"]])
        self._sessions: pd.DatetimeIndex = pd.DatetimeIndex([])
        self._ohlc: np.ndarray = np.empty((4, 0, len(gids)), dtype=np.int64)  # ticks
        self._volume: np.ndarray = np.empty((0, len(gids)), dtype=np.int64)

    # -- DataProvider ---------------------------------------------------------------------------

    def universe(self) -> pd.DataFrame:
        """symbol, sector, market_cap (USD, approximate), name, theme."""
        return self._table[["symbol", "sector", "market_cap", "name", "theme"]].copy()

    def daily_bars(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        """Daily OHLCV for sessions in [start, end] (clipped to [EPOCH, self.end])."""
        symbols = sorted(set(symbols))
        cols = self._columns(symbols)
        last = min(pd.Timestamp(end).date(), self.end)
        self._ensure(max(last, EPOCH))
        lo = self._sessions.searchsorted(pd.Timestamp(start))
        hi = self._sessions.searchsorted(pd.Timestamp(last), side="right")
        dates = self._sessions[lo:hi]
        o, h, l, c = (a[lo:hi][:, cols].T.ravel() / _TICK for a in self._ohlc)
        return pd.DataFrame({
            "symbol": np.repeat(np.asarray(symbols, dtype=object), len(dates)),
            "date": np.tile(dates.values, len(cols)),
            "open": o, "high": h, "low": l, "close": c,
            "volume": self._volume[lo:hi][:, cols].T.ravel().astype(float),
        }, columns=BAR_COLUMNS)

    def minute_bars(self, symbols: Sequence[str], session: date) -> pd.DataFrame:
        """390 one-minute bars per symbol (fewer on early closes) that aggregate exactly to the
        session's daily bar: first open, last close, max high, min low, total volume."""
        symbols = sorted(set(symbols))
        stamps, (o, h, l, c, v) = self._minutes(symbols, session)
        n = len(stamps)
        utc = np.tile(stamps.tz_convert("UTC").tz_localize(None).values, len(symbols))
        return pd.DataFrame({
            "symbol": np.repeat(np.asarray(symbols, dtype=object), n),
            "timestamp": pd.DatetimeIndex(utc).tz_localize("UTC").tz_convert(calendar.NY),
            "open": o.ravel() / _TICK, "high": h.ravel() / _TICK, "low": l.ravel() / _TICK,
            "close": c.ravel() / _TICK, "volume": v.ravel().astype(float),
        }, columns=MINUTE_COLUMNS)

    def latest_quotes(self, symbols: Sequence[str], as_of: datetime) -> pd.DataFrame:
        """Bid/ask per symbol at `as_of` (naive times are New York): before the open, pre-market
        quotes around the day's opening price (so the overnight gap shows); during the session,
        around that minute's opening price; otherwise around the last close."""
        symbols = sorted(set(symbols))
        cols = self._columns(symbols)
        ts = pd.Timestamp(as_of)
        ts = ts.tz_localize(calendar.NY) if ts.tzinfo is None else ts.tz_convert(calendar.NY)
        day = ts.date()
        session = calendar.is_trading_day(day)
        thin = 1.0
        if session and ts < pd.Timestamp(calendar.session_open(day)):
            row = self._session_row(day)  # may extend the panel: index it afterwards
            mid = self._ohlc[0][row, cols] / _TICK
            thin = 3.0  # pre-market books are thinner: wider spreads, noisier mids
        elif session and ts < pd.Timestamp(calendar.session_close(day)):
            stamps, (o, *_) = self._minutes(symbols, day)
            mid = o[:, stamps.searchsorted(ts.floor("min"))] / _TICK
        else:
            row = self._session_row(day if session else calendar.previous_session(day))
            mid = self._ohlc[3][row, cols] / _TICK
        minute = int(ts.timestamp()) // 60
        noise = np.array([_stream(self.seed, _QUOTE, _symbol_key(s), minute).standard_normal(4)
                          for s in symbols]).reshape(len(symbols), 4)
        spread_bps = np.array([_TIER_SPREAD_BPS[t] for t in self._tier[cols]]) * thin
        mid = mid * (1 + 0.0005 * thin * noise[:, 0])
        half = mid * spread_bps * (1 + 0.3 * np.abs(noise[:, 1])) / 2e4
        bid = _to_ticks(np.log(mid - half)).astype(np.int64)
        ask = np.maximum(_to_ticks(np.log(mid + half)), bid + np.where(mid >= 1, 100, 1))
        return pd.DataFrame({
            "symbol": symbols, "bid": bid / _TICK, "ask": ask / _TICK,
            "bid_size": 100 * (1 + np.floor(np.abs(noise[:, 2]) * 8)).astype(np.int64),
            "ask_size": 100 * (1 + np.floor(np.abs(noise[:, 3]) * 8)).astype(np.int64),
            "timestamp": pd.DatetimeIndex([ts] * len(symbols)),
        }, columns=QUOTE_COLUMNS)

    # -- internals ------------------------------------------------------------------------------

    def _columns(self, symbols: Sequence[str]) -> np.ndarray:
        unknown = [s for s in symbols if s not in self._col]
        if unknown:
            raise BadInputError(
                f"{self.name}: unknown symbol(s) {unknown[:10]}{' …' if len(unknown) > 10 else ''}; "
                "the demo universe is listed by `DemoMarket.universe()` (use demo:N for more names)"
            )
        return np.array([self._col[s] for s in symbols], dtype=np.int64)

    def _minutes(self, symbols: list[str], session: date) -> tuple[pd.DatetimeIndex, tuple[np.ndarray, ...]]:
        """Minute bar start times and (open, high, low, close ticks, volume) arrays (S, n)."""
        cols = self._columns(symbols)
        day = self._session_row(session)
        opens = pd.Timestamp(calendar.session_open(session))
        n = int((pd.Timestamp(calendar.session_close(session)) - opens).total_seconds() // 60)
        daily = [a[day, cols].astype(np.int64) for a in self._ohlc] + [self._volume[day, cols]]
        paths = _minute_paths(self.seed, symbols, pd.Timestamp(session).date(), n, *daily)
        return pd.date_range(opens, periods=n, freq="min"), paths

    def _session_row(self, session: date) -> int:
        d = pd.Timestamp(session).date()
        if not calendar.is_trading_day(d):
            raise BadInputError(f"{d} is not an NYSE session; pick a trading day (e.g. {calendar.previous_session(d)})")
        if d < EPOCH:
            raise BadInputError(f"{d}: the demo market starts on {EPOCH}; pick a later session")
        self._ensure(d)
        return int(self._sessions.searchsorted(pd.Timestamp(d)))

    def _ensure(self, last: date) -> None:
        """Generate (or extend) the panel through session `last`; earlier rows never change."""
        if len(self._sessions) and self._sessions[-1] >= pd.Timestamp(last):
            return
        if last > calendar.last_session():
            raise BadInputError(
                f"{last}: beyond the market calendar (last session {calendar.last_session()}); pick an earlier date"
            )
        self._sessions = pd.DatetimeIndex(calendar.sessions_between(EPOCH, calendar.latest_session(last)))
        self._ohlc, self._volume = _daily_panel(self.seed, self._table, self._gids, self._tier, len(self._sessions))


def _tier(market_cap: float) -> str:
    """The default tier of a cap (the demo's volatility and spreads follow it, whatever the parameters)."""
    return next((t for t in CAP_TIERS[:-1] if market_cap >= _TIER_CAP[t][0]), "micro")


def _traits(seed: int, table: pd.DataFrame, gids: np.ndarray, tier: np.ndarray) -> dict[str, np.ndarray]:
    """Per-symbol model parameters (daily units), drawn once per symbol from its block stream."""
    z = _by_block(seed, _TRAITS_Z, gids, lambda g: g.standard_normal((6, _BLOCK)))
    u = _by_block(seed, _TRAITS_U, gids, lambda g: g.random((6, _BLOCK)))
    theme_mult = table["theme"].map(_HOT_THEMES).fillna(1.0).to_numpy()
    sector_mult = table["sector"].map(_CALM_SECTORS).fillna(1.0).to_numpy()
    vol = np.array([_TIER_VOL[t] for t in tier]) * theme_mult * sector_mult * np.exp(0.2 * z[0])
    trending = u[0] < 0.5
    garch_a = 0.04 + 0.06 * u[1]
    return {
        "sigma": vol / np.sqrt(252),
        "beta": np.clip(1.0 + 0.3 * z[1], 0.3, 2.0) * np.where(theme_mult > 1, 1.25, 1.0) * sector_mult,
        "gamma": 0.5 + 0.8 * u[2],
        "mu": np.clip(0.05 + 0.12 * z[2], -0.15, 0.35) / 252,
        "phi": np.where(trending, 0.02 + 0.04 * u[3], -0.22 + 0.14 * u[3]),
        "kappa": np.where(trending, 1 / 400, 1 / 70 + (1 / 25 - 1 / 70) * u[4]),
        "trend": np.where(trending, (0.3 + 0.5 * u[5]) / 252, 0.0),  # sd of the trend regime drift
        "garch_a": garch_a,
        "garch_b": 0.975 - garch_a + 0.015 * u[1],
        "gap_share": 0.25 + 0.2 * u[2],
        "turnover": np.array([_TIER_TURNOVER[t] for t in tier]) * np.exp(0.35 * z[3]),
    }


def _market(seed: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Market factor log returns and their conditional daily volatility (GARCH, Student-t 5)."""
    g = _stream(seed, _MARKET)
    e = g.standard_t(5, size=T) / np.sqrt(5 / 3)
    s2 = (_MARKET_VOL / np.sqrt(252)) ** 2
    a, b = 0.09, 0.89
    h = np.empty(T)
    eps = np.empty(T)
    ht, prev = s2, 0.0
    for t in range(T):
        ht = s2 * (1 - a - b) + a * prev * prev + b * ht
        h[t] = ht
        prev = eps[t] = np.sqrt(ht) * e[t]
    return _MARKET_DRIFT / 252 + eps, np.sqrt(h)


def _daily_panel(
    seed: int, table: pd.DataFrame, gids: np.ndarray, tier: np.ndarray, T: int
) -> tuple[np.ndarray, np.ndarray]:
    """(open, high, low, close) ticks as a (4, T, N) int32 array and volume (T, N), from EPOCH.

    Float32 throughout except the log-price sum: the panel for 5,000 names is ~10M cells."""
    N = len(gids)
    f32 = np.float32
    p = {k: v.astype(f32) for k, v in _traits(seed, table, gids, tier).items()}
    market, market_vol = (x.astype(f32) for x in _market(seed, T))
    regime = (market_vol / f32(_MARKET_VOL / np.sqrt(252)))[:, None]  # sectors share the market regime
    sectors = _stream(seed, _SECTOR).standard_normal((T, len(SECTORS)), dtype=f32) * regime
    sector_ret = sectors[:, table["sector"].map(SECTORS.index).to_numpy()] * f32(_SECTOR_VOL / np.sqrt(252))

    normal = _by_block(seed, _IDIO, gids, lambda g: g.standard_normal((T, _BLOCK), dtype=f32))
    chi2 = _by_block(seed, _IDIO_CHI2, gids, lambda g: g.standard_gamma(f32(_DF / 2), (T, _BLOCK), f32))
    shock = normal * np.sqrt(f32((_DF - 2) / 2) / chi2)  # Student-t, unit variance
    del normal, chi2

    months = _by_block(seed, _TREND, gids, lambda g: g.standard_normal((T // _MONTH + 1, _BLOCK), dtype=f32))
    trend = (lfilter([np.sqrt(1 - 0.8**2)], [1, -0.8], months, axis=0) * p["trend"]).astype(f32)

    sigma, ga, gb, phi, kappa = p["sigma"], p["garch_a"], p["garch_b"], p["phi"], p["kappa"]
    omega = sigma**2 * (1 - ga - gb)
    h = sigma**2
    eps, ar, level = (np.zeros(N, dtype=f32) for _ in range(3))
    idio = np.empty((T, N), dtype=f32)
    vol = np.empty((T, N), dtype=f32)
    for t in range(T):  # GARCH variance, AR(1) and the pull to the trend line, across all symbols
        h = omega + ga * eps * eps + gb * h
        np.sqrt(h, out=vol[t])
        eps = vol[t] * shock[t]
        ar = phi * ar + eps
        step = idio[t]
        np.subtract(ar + trend[t // _MONTH], kappa * level, out=step)
        level += step
    del shock

    factor = p["beta"] * market[:, None] + p["gamma"] * sector_ret
    del sector_ret
    ret = idio
    ret += factor
    ret += p["mu"]
    log_p0 = np.log(table["price"].to_numpy())
    log_close = np.cumsum(ret, axis=0, dtype=np.float64).astype(f32)
    log_close += log_p0.astype(f32)
    log_open = np.empty_like(log_close)
    log_open[0] = log_p0
    log_open[1:] = log_close[:-1]
    factor *= p["gap_share"]
    log_open += factor
    gap = _by_block(seed, _GAP, gids, lambda g: g.standard_normal((T, _BLOCK), dtype=f32))
    gap *= vol
    gap *= f32(0.35)
    log_open += gap
    del gap, factor

    total_vol = np.sqrt(vol * vol + (p["beta"] * market_vol[:, None]) ** 2)
    del vol
    ohlc = np.empty((4, T, N), dtype=np.int32)
    ohlc[0], ohlc[3] = _to_ticks(log_open), _to_ticks(log_close)
    ranges = _by_block(seed, _RANGE, gids, lambda g: g.standard_exponential((2 * T, _BLOCK), dtype=f32))
    ohlc[1] = _to_ticks(np.maximum(log_open, log_close) + f32(0.45) * total_vol * ranges[0::2])
    ohlc[2] = _to_ticks(np.minimum(log_open, log_close) - f32(0.45) * total_vol * ranges[1::2])
    del ranges, log_open, log_close

    noise = _by_block(seed, _VOLUME, gids, lambda g: g.standard_normal((T, _BLOCK), dtype=f32))
    activity = lfilter([0.3], [1, -0.9], noise, axis=0).astype(f32)  # persistent volume regime
    activity += f32(0.15) * noise
    activity += f32(0.35) * (np.abs(ret) / total_vol - f32(0.8))  # busier on big moves
    shares = p["turnover"] * (table["market_cap"].to_numpy() / table["price"].to_numpy()).astype(f32)
    volume = np.maximum(np.rint(shares * np.exp(activity, dtype=np.float64)), 100).astype(np.int64)
    return ohlc, volume


def _minute_paths(
    seed: int, symbols: list[str], session: date, n: int,
    o: np.ndarray, h: np.ndarray, l: np.ndarray, c: np.ndarray, v: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Minute OHLC ticks and volumes (S, n) whose aggregate is exactly the daily bar (o, h, l, c, v)."""
    S = len(symbols)
    draws = np.stack([_stream(seed, _MINUTE, _symbol_key(s), session.toordinal()).standard_normal((4, n))
                      for s in symbols]) if S else np.zeros((0, 4, n))
    lo, lh, ll, lc = (np.log(x / _TICK)[:, None] for x in (o, h, l, c))
    k = np.arange(1, n + 1) / n
    walk = np.cumsum(draws[:, 0], axis=1)
    bridge = (walk - k * walk[:, -1:]) / np.sqrt(n)
    scale = np.maximum(lh - ll, 1e-6) * 0.5
    path = np.concatenate([lo, lo + k * (lc - lo) + scale * bridge], axis=1)  # (S, n+1) closes
    path[:, -1] = lc[:, 0]
    bo, bc = path[:, :-1], path[:, 1:]
    wick = scale / np.sqrt(n) * 0.3
    bh = np.maximum(bo, bc) + wick * (np.abs(draws[:, 1]) + 1e-3)
    bl = np.minimum(bo, bc) - wick * (np.abs(draws[:, 2]) + 1e-3)

    # A monotone piecewise-linear map fixing open and close and stretching the extremes onto the
    # daily high and low: order is kept, so every minute bar stays consistent.
    top, bottom = bh.max(axis=1, keepdims=True), bl.min(axis=1, keepdims=True)
    a, b = np.minimum(lo, lc), np.maximum(lo, lc)

    def stretch(x: np.ndarray) -> np.ndarray:
        below = ll + (x - bottom) * (a - ll) / (a - bottom)
        above = b + (x - b) * (lh - b) / (top - b)
        return np.where(x < a, below, np.where(x > b, above, x))

    mo, mh, ml, mc = (_to_ticks(stretch(x)).astype(np.int64) for x in (bo, bh, bl, bc))
    mo[:, 0], mc[:, -1] = o, c
    mh = np.minimum(np.maximum.reduce([mh, mo, mc]), h[:, None])
    ml = np.maximum(np.minimum.reduce([ml, mo, mc]), l[:, None])
    mh[np.arange(S), mh.argmax(axis=1)] = h  # exact extremes (rounding may leave them a tick short)
    ml[np.arange(S), ml.argmin(axis=1)] = l

    # U-shaped volume, busier on big moves, split into integers that sum to the daily volume.
    x = np.linspace(-1, 1, n)
    weight = (1 + 2.0 * x**2) * np.exp(0.35 * draws[:, 3]) * (1 + 20 * np.abs(np.diff(path, axis=1)))
    share = v[:, None] * weight / weight.sum(axis=1, keepdims=True)
    base = np.floor(share).astype(np.int64)
    left = v - base.sum(axis=1)
    rank = np.argsort(np.argsort(-(share - base), axis=1), axis=1)
    vol = base + (rank < left[:, None])
    return mo, mh, ml, mc, vol
