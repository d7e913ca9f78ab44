"""The scanner: daily bars before a session -> the ranked opportunities table (DESIGN.md contract).

Why it is built this way:

- **No look-ahead.** Scanning for session D reads only bars dated strictly before D; the panel is
  the last `scan.lookback_days` bar dates before D. The price is the mid of the latest pre-market
  quote for D (bid and ask both positive, timestamp on D before the open) when the provider has
  one, else the last close before D; `price_source` says which (`quote` | `close`).
- **Scores a trader can check.** Every signal is percentile-ranked (0-100) across the whole
  universe and kept as a `score_<signal>` column; the composite is the weighted mean of the
  available component ranks, itself percentile-ranked so `score` is spread over 0-100 (the top
  10% of the universe score 90+). A signal a symbol cannot be judged on is left out of its mean.
  The weights are `scan.signals`' own, or (`scan.weights: fitted`) fitted from each signal's past
  information coefficient over the bars before the session (`wolfkit.signal_weights`, as the backtest).
- **Fast.** Everything per symbol runs vectorised over a dates x symbols panel; chunks of
  `scan.chunk_size` symbols go to any `concurrent.futures.Executor` (a process pool when
  `scan.workers > 0`, or a Dask client's `get_executor()`); ranks are taken over the whole universe
  after the chunks return (`rank`). A backtest computes the per-symbol half for all its sessions at
  once instead (`wolfkit.panel_scan`), then ranks each session with the same `rank`.
- **Nothing dropped silently.** Symbols with too little history, no bars, a stale last bar, long
  gaps, non-positive prices or missing metadata are listed in `excluded` with the reason. Bars that
  end more than `scan.max_gap_days` weekdays before D stop the scan (stale prices would size every order wrong).

"""

from __future__ import annotations

import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from wolfkit.config import SignalWeighting
from wolfkit.data.quality import (
    empty_quarantine,
    quarantine_count,
    quarantined_rows,
    write_data_quality,
)
from wolfkit.domain import MaxdiffSide, PriceSource, Strategy
from wolfkit.errors import BadInputError
from wolfkit.exclusions import exclusions
from wolfkit.exits import levels as exit_levels
from wolfkit.rolling import ffill
from wolfkit.signal_weights import SignalWeights, history_days, session_weights_note, weights_for
from wolfkit.signals import Panel, Signal, get_signal, signal_values
from wolfkit.walk_forward import choose_strategy, levels, maxdiff_returns, stats, trade_returns

if TYPE_CHECKING:
    from wolfkit.config import ExitParams, Params, RiskParams, ScanParams
    from wolfkit.data.base import DataProvider


OPPORTUNITY_COLUMNS = [
    "symbol", "sector", "market_cap", "cap_tier", "price", "price_source", "score",
    "expected_return", "return_std", "strategy", "take_profit", "stop_loss",
    "pred_high", "pred_low", "maxdiff_avg_return", "maxdiff_side", "maxdiff_return_std",
    "atr", "adv_usd", "volatility",
]


@dataclass
class ScanResult:
    """What a scan produced, and what it was made from.

    `opportunities`: OPPORTUNITY_COLUMNS + one `score_<signal>` per signal, sorted by score (desc).
    `excluded`: symbol, reason. `unavailable`: columns that could not be computed for any symbol
    (e.g. the high/low-based fields on close-only data) and strategies not evaluated
    (`strategy:<name>`). `data_through`: the last bar date used (< `session`). `quarantined`: bad
    rows the provider left out of its files (`wolfkit.data.quality.QUARANTINE_COLUMNS`).
    """

    opportunities: pd.DataFrame
    excluded: pd.DataFrame
    session: date
    data_through: date
    synthetic: bool
    unavailable: list[str]
    provider: str
    elapsed_s: float
    signals: list[str] = field(default_factory=list)
    min_score: float | None = None
    quarantined: pd.DataFrame = field(default_factory=empty_quarantine)
    weights: SignalWeights | None = None  # the composite's signal weights (`scan.weights`) and how they were fitted

    def summary(self, top: int = 10) -> str:
        """A few lines for a terminal: what was scanned, the best rows, what is missing and why."""
        opp = self.opportunities
        lines = [
            f"scan for {self.session} from bars through {self.data_through} ({self.provider}): "
            f"{len(opp)} ranked, {len(self.excluded)} excluded, {self.elapsed_s:.2f} s",
        ]
        if self.min_score is not None:
            lines.append(f"candidates (score >= {self.min_score:g}): {int((opp['score'] >= self.min_score).sum())}")
        if len(opp):
            lines.append(f"prices: {int((opp['price_source'] == PriceSource.QUOTE).sum())} pre-market quotes, "
                         f"{int((opp['price_source'] == PriceSource.CLOSE).sum())} last closes")
            cols = ["symbol", "sector", "score", "price", "price_source", "strategy", "expected_return", "maxdiff_side"]
            lines.append(opp[cols].head(top).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        if len(self.excluded):
            reasons = self.excluded["reason"].str.split(":").str[0].value_counts()
            lines.append("excluded: " + ", ".join(f"{n} {r}" for r, n in reasons.items()))
        if self.unavailable:
            lines.append("unavailable on this data: " + ", ".join(self.unavailable))
        if self.weights is not None and self.weights.mode is SignalWeighting.FITTED:
            fit = self.weights.fits[self.weights.block[self.session]]
            lines.append(f"fitted {session_weights_note(fit.weights)} (refit {fit.refit} from the ICs of "
                         f"{max(fit.ic_sessions.values(), default=0)} earlier sessions){'; ' + fit.note if fit.note else ''}")
        if len(self.quarantined):
            lines.append(self.quarantine_note())
        if self.synthetic:
            from wolfkit.data.demo import SYNTHETIC_NOTICE

            lines.append(SYNTHETIC_NOTICE)
        return "\n".join(lines)

    def quarantine_note(self) -> str:
        """One line: how many bad rows of the data files were left out, and where they are listed."""
        q = self.quarantined
        files = ", ".join(sorted(set(q["file"].astype(str))))
        return (f"quarantined {quarantine_count(q)} bad row(s) of {files} ({len(q)} problem(s)); "
                "listed in the data_quality.csv beside the opportunities")


# ---------------------------------------------------------------- the window (pure)


def window_panel(bars: pd.DataFrame, session: date, lookback_days: int, has_ohlc: bool = True) -> Panel:
    """The panel of the last `lookback_days` bar dates strictly before `session`."""
    if bars.empty:
        raise BadInputError(f"no daily bars before {session}: the data source returned none; check data.source")
    dates = pd.to_datetime(bars["date"], cache=False).to_numpy()
    before = dates < np.datetime64(pd.Timestamp(session))
    kept = np.sort(pd.unique(dates[before]))[-lookback_days:]
    if len(kept) == 0:
        raise BadInputError(
            f"no daily bars before {session}: the data ends on or after it starts; pick a later --date"
        )
    return Panel.from_bars(bars.loc[before & (dates >= kept[0])], has_ohlc=has_ohlc)


# ---------------------------------------------------------------- per-chunk work and ranking (pure)


def scan_chunk(panel: Panel, signals: list[Signal], scan: ScanParams, exits: ExitParams,
               scan_risk: RiskParams) -> pd.DataFrame:
    """Everything per symbol for one chunk: raw signal values, strategy choice and statistics, levels.

    `panel` holds raw bars (NaN where a bar is missing). Index: symbol. Columns: `raw_<signal>`,
    last_close, atr, range_up, range_down, strategy, expected_return, return_std, maxdiff_buy,
    maxdiff_sell, maxdiff_buy_std, maxdiff_sell_std (mean and std of each maxdiff side's daily returns),
    adv_usd, volatility (`risk_inputs`).
    """
    filled = replace(panel, close=ffill(panel.close))
    out = pd.DataFrame(index=panel.symbols)
    for s in signals:
        out[f"raw_{s.name}"] = signal_values(s, filled)
    out["last_close"] = filled.close[-1]

    lv = levels(panel, scan.atr_period)
    out["atr"], out["range_up"], out["range_down"] = lv.atr[-1], lv.range_up[-1], lv.range_down[-1]
    if not panel.has_ohlc:
        out[["atr", "range_up", "range_down"]] = np.nan
    out["strategy"], out["expected_return"], out["return_std"] = choose_strategy(
        {str(strat): stats(r) for strat, r in trade_returns(panel, lv, exits).items()})
    if panel.has_ohlc:
        buy, sell = (stats(r) for r in maxdiff_returns(panel, lv))
        out["maxdiff_buy"], out["maxdiff_sell"] = buy[0], sell[0]
        out["maxdiff_buy_std"], out["maxdiff_sell_std"] = buy[1], sell[1]
    else:
        out["maxdiff_buy"] = out["maxdiff_sell"] = out["maxdiff_buy_std"] = out["maxdiff_sell_std"] = np.nan
    out["adv_usd"], out["volatility"] = risk_inputs(panel.close, panel.volume, scan_risk)
    return out


def risk_inputs(close: np.ndarray, volume: np.ndarray, risk: RiskParams) -> tuple[np.ndarray, np.ndarray]:
    """What the risk and liquidity rules read, per symbol (column) from its raw bars (NaN: no bar).

    `adv_usd`: the mean of close x volume over the last `risk.adv_days` bar dates; `volatility`: the
    sample std of the daily close-to-close returns among the last `risk.volatility_days` + 1 closes.
    NaN when fewer than half of the window's values exist (or no volume: close-only data). Column by
    column, so a chunk of symbols and the whole panel give the same bits.
    """
    dollars = close[-risk.adv_days:] * volume[-risk.adv_days:]
    adv = _mean_of_enough(dollars, max(1, risk.adv_days // 2))
    tail = close[-(risk.volatility_days + 1):]
    r = tail[1:] / tail[:-1] - 1.0
    n = (~np.isnan(r)).sum(axis=0)
    mean = _mean_of_enough(r, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.nansum((r - mean) ** 2, axis=0) / (n - 1)
    vol = np.where(n >= max(2, risk.volatility_days // 2), np.sqrt(var), np.nan)
    return adv, vol


def _mean_of_enough(a: np.ndarray, least: int) -> np.ndarray:
    """Column means over the non-NaN values; NaN where fewer than `least` exist."""
    n = (~np.isnan(a)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= least, np.nansum(a, axis=0) / n, np.nan)


def _percentile(v: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(v)
    n = int(ok.sum())
    if n <= 1:
        return np.where(ok, 50.0, np.nan)
    r = np.full(v.shape, np.nan)
    r[ok] = rankdata(v[ok], method="average")
    return (r - 1) / (n - 1) * 100


def percentile_rank(values: pd.Series) -> pd.Series:
    """Cross-sectional rank scaled to 0 (lowest) .. 100 (highest); ties share their average; NaN stays."""
    return pd.Series(_percentile(values.to_numpy(dtype=float)), index=values.index)


def composite_scores(raw: pd.DataFrame, weights: dict[str, float]) -> pd.DataFrame:
    """Component scores `score_<name>` (percentile ranks) and `score`, over ALL rows of `raw`.

    `raw` has one column per signal name. The composite is the weighted mean of the components
    present for a row (weights renormalised), percentile-ranked again so it spans 0-100.
    """
    # symbols x signals in column-major order, as a frame's values are: the weighted sum below then rounds
    # alike whichever way the components were built (a tie in `score` must stay a tie)
    v = np.vstack([_percentile(raw[k].to_numpy(dtype=float)) for k in raw.columns] or
                  [np.empty((0, len(raw)))]).T
    w = np.array([weights[k] for k in raw.columns], dtype=float)
    ok = ~np.isnan(v)
    wsum = (ok * w).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mix = np.where(wsum > 0, np.where(ok, v, 0.0) @ w / wsum, np.nan)
    cols = {"score": _percentile(mix)} | {f"score_{k}": v[:, i] for i, k in enumerate(raw.columns)}
    return pd.DataFrame(cols, index=raw.index)


# ---------------------------------------------------------------- the scan (I/O through the provider)


def resolve_signals(scan: ScanParams) -> tuple[list[Signal], dict[str, float]]:
    """The configured signals and their weights by signal name."""
    sigs, weights = [], {}
    for key, w in scan.signals.items():
        s = get_signal(key)
        if s.name in weights:
            raise BadInputError(f"scan.signals: two entries produce the signal name {s.name!r}; keep one")
        sigs.append(s)
        weights[s.name] = w
    return sigs, weights


def _quote_prices(provider: DataProvider, symbols: list[str], session: date) -> pd.Series:
    """Mid of the latest quote on `session` before its open (bid and ask positive, ask >= bid).

    Asked for as of one minute before the open; a quote stamped on an earlier day is stale and
    ignored, and a date that is not a session has no pre-market (the last close is the price).
    """
    from wolfkit import calendar

    if not symbols or not calendar.is_trading_day(session):
        return pd.Series(dtype=float)  # no session, no pre-market
    as_of = calendar.session_open(session) - timedelta(minutes=1)
    try:
        q = provider.latest_quotes(symbols, as_of)
    except NotImplementedError:
        return pd.Series(dtype=float)
    if q is None or len(q) == 0:
        return pd.Series(dtype=float)
    ts = pd.to_datetime(q["timestamp"])
    ts = ts.dt.tz_convert(calendar.NY) if ts.dt.tz is not None else ts.dt.tz_localize(calendar.NY)
    bid, ask = q["bid"].astype(float), q["ask"].astype(float)
    ok = (bid > 0) & (ask >= bid) & (ts.dt.date == session) & (ts <= pd.Timestamp(as_of))
    return pd.Series(((bid + ask) / 2)[ok].to_numpy(), index=q["symbol"][ok].astype(str).to_numpy())


def _run_chunks(panel: Panel, signals: list[Signal], params: Params, executor: Executor | None,
                progress: bool) -> pd.DataFrame:
    size = params.scan.chunk_size
    bounds = [slice(i, min(i + size, panel.shape[1])) for i in range(0, panel.shape[1], size)]
    if executor is None and params.scan.workers == 0:
        parts = []
        with _Progress(progress, len(bounds)) as advance:
            for b in bounds:
                parts.append(scan_chunk(panel.take(b), signals, params.scan, params.exits, params.risk))
                advance()
        return pd.concat(parts) if parts else scan_chunk(panel, signals, params.scan, params.exits, params.risk)
    own = executor is None
    pool: Executor = ProcessPoolExecutor(max_workers=params.scan.workers) if executor is None else executor
    try:
        futures: dict[Future, int] = {pool.submit(scan_chunk, panel.take(b), signals, params.scan, params.exits, params.risk): i
                                      for i, b in enumerate(bounds)}
        parts_by_index: dict[int, pd.DataFrame] = {}
        with _Progress(progress, len(bounds)) as advance:
            for f in as_completed(futures):
                parts_by_index[futures[f]] = f.result()
                advance()
    finally:
        if own:
            pool.shutdown()
    return pd.concat([parts_by_index[i] for i in range(len(bounds))])


class _Progress:
    """A rich progress bar over chunks when asked for, else a no-op."""

    def __init__(self, show: bool, total: int) -> None:
        self.show, self.total = show and total > 1, total

    def __enter__(self):
        if not self.show:
            return lambda: None
        from rich.progress import Progress

        self._bar = Progress(transient=True)
        self._bar.__enter__()
        task = self._bar.add_task("scanning", total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc) -> None:
        if self.show:
            self._bar.__exit__(*exc)


def run_scan(params: Params, session: date, provider: DataProvider | None = None,
             executor: Executor | None = None, progress: bool = False) -> ScanResult:
    """Scan the universe for `session` from bars strictly before it (see the module docstring)."""
    t0 = time.perf_counter()
    scan = params.scan
    if scan.min_history > scan.lookback_days:
        raise BadInputError(
            f"scan.min_history {scan.min_history} > scan.lookback_days {scan.lookback_days}: every symbol "
            "would be excluded; lower min_history or raise lookback_days"
        )
    if provider is None:
        from wolfkit.data import get_provider

        provider = get_provider(params)
    signals, weights = resolve_signals(scan)

    uni = provider.universe().copy()
    uni["symbol"] = uni["symbol"].astype(str)
    if params.data.symbols:
        uni = uni[uni["symbol"].isin(params.data.symbols)]
    uni = uni.drop_duplicates("symbol").set_index("symbol")
    symbols = list(uni.index)

    start = session - timedelta(days=history_days(scan))
    bars = provider.daily_bars(symbols, start, session - timedelta(days=1))
    bars = bars[bars["symbol"].isin(symbols)]
    panel = window_panel(bars, session, scan.lookback_days, has_ohlc=provider.has_ohlc)
    if scan.weights is SignalWeighting.FITTED:  # the backtest's own fit, over the bars before the session
        before = bars[pd.to_datetime(bars["date"], cache=False) < pd.Timestamp(session)]
        fitted = weights_for(Panel.from_bars(before, has_ohlc=provider.has_ohlc), signals, weights, [session], scan)
    else:
        fitted = weights_for(panel, signals, weights, [session], scan)
    weights = fitted.for_session(session)
    data_through = panel.dates[-1].date()
    stale = int(np.busday_count(data_through + timedelta(days=1), session))
    if stale > scan.max_gap_days:
        raise BadInputError(
            f"{provider.name}: the bars end on {data_through}, {stale} weekdays before {session} "
            f"(> scan.max_gap_days {scan.max_gap_days}); the prices would be stale: refresh the data "
            "or pass an earlier --date"
        )

    table, excluded, unavailable = scan_window(
        panel, uni, signals, weights, params, _quote_prices(provider, symbols, session), executor, progress)
    if not provider.has_ohlc:
        unavailable += [f"strategy:{Strategy.TAKEPROFIT}", f"strategy:{Strategy.HIGHLOW}"]
    return ScanResult(
        opportunities=table,
        excluded=excluded,
        session=session,
        data_through=data_through,
        synthetic=bool(provider.synthetic),
        unavailable=unavailable,
        provider=str(provider.name),
        elapsed_s=time.perf_counter() - t0,
        signals=[s.name for s in signals],
        min_score=params.portfolio.min_score,
        quarantined=quarantined_rows(provider),
        weights=fitted,
    )


def scan_window(panel: Panel, uni: pd.DataFrame, signals: list[Signal], weights: dict[str, float], params: Params,
                quotes: pd.Series | None = None, executor: Executor | None = None,
                progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The opportunities table for the session right after `panel`'s last row (pure).

    `panel`: the `scan.lookback_days` bar dates before the session (`window_panel`, or a row slice
    of a longer panel: the backtest scans every session this way, so the two cannot differ);
    columns may include symbols without bars (they are excluded). `uni`: the universe indexed by
    symbol. `quotes`: pre-market mids by symbol (None or empty: the last close is the price).
    Returns (opportunities, excluded, unavailable columns).
    """
    excluded = exclusions(panel, uni, params.scan)
    keep = np.flatnonzero(~panel.symbols.isin(excluded["symbol"]) & panel.symbols.isin(uni.index))
    per_symbol = _run_chunks(panel.take(keep), signals, params, executor, progress)
    return rank(per_symbol, excluded, uni, weights, params, quotes)


def rank(per_symbol: pd.DataFrame, excluded: pd.DataFrame, uni: pd.DataFrame, weights: dict[str, float],
         params: Params, quotes: pd.Series | None = None) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Per-symbol values (`scan_chunk`'s columns, the symbols that are not excluded) -> the ranked table.

    The cross-sectional half of a scan, shared by `scan_window` and the panel form
    (`wolfkit.panel_scan`). `weights`: by signal name, in the order of the `raw_<signal>` columns.
    Returns (opportunities, excluded + symbols no signal could score, unavailable columns).
    """
    names = list(weights)
    raw = per_symbol[[f"raw_{n}" for n in names]].rename(columns=lambda c: c[4:])
    scores = composite_scores(raw, weights)
    unscored = scores.index[scores["score"].isna()]
    if len(unscored):
        excluded = pd.concat([excluded, pd.DataFrame({"symbol": unscored, "reason": "no signal: none computable from its bars"})],
                             ignore_index=True)
    prices = quotes if quotes is not None else pd.Series(dtype=float)
    table = _assemble(per_symbol.join(scores).drop(index=unscored), uni, prices, params)
    comp_cols = [f"score_{n}" for n in names]
    unavailable = [c for c in OPPORTUNITY_COLUMNS + comp_cols if len(table) and table[c].isna().all()]
    return table[OPPORTUNITY_COLUMNS + comp_cols], excluded.sort_values("symbol", ignore_index=True), unavailable


def _assemble(df: pd.DataFrame, uni: pd.DataFrame, quotes: pd.Series, params: Params) -> pd.DataFrame:
    """Per-symbol results + metadata + price -> the opportunities table, sorted by score.

    Built column by column as arrays and made a frame once: it runs for every session of a backtest.
    """
    q = quotes.reindex(df.index).to_numpy(dtype=float)
    quoted = q > 0
    price = np.where(quoted, q, df["last_close"].to_numpy(dtype=float))
    market_cap = pd.to_numeric(uni["market_cap"].reindex(df.index), errors="coerce").to_numpy(dtype=float)
    strategy = df["strategy"].to_numpy(dtype=object)
    atr, up, down = (df[c].to_numpy(dtype=float) for c in ("atr", "range_up", "range_down"))
    pred_high, pred_low = price * (1 + up), price * (1 - down)
    take_profit, stop_loss = np.full(len(price), np.nan), np.full(len(price), np.nan)
    for s in Strategy.directional():
        mine = strategy == s
        tp, sl = exit_levels(s, price, atr, pred_high, pred_low, params.exits)
        take_profit, stop_loss = np.where(mine, tp, take_profit), np.where(mine, sl, stop_loss)
    buy, sell = df["maxdiff_buy"].to_numpy(dtype=float), df["maxdiff_sell"].to_numpy(dtype=float)
    unknown = np.isnan(buy) | np.isnan(sell)
    both = (buy > 0) & (sell > 0)
    sides = np.array([None, MaxdiffSide.BOTH.value, MaxdiffSide.BUY.value, MaxdiffSide.SELL.value], dtype=object)
    avg = np.select([both, buy >= sell], [(buy + sell) / 2, buy], sell)
    sd_buy, sd_sell = df["maxdiff_buy_std"].to_numpy(dtype=float), df["maxdiff_sell_std"].to_numpy(dtype=float)
    # a `both` plan trades one side or the other: its return is an even mixture of the two sides'
    sd_both = np.sqrt((sd_buy**2 + sd_sell**2) / 2 + ((buy - sell) / 2) ** 2)
    cols = {
        "symbol": df.index.to_numpy(dtype=object),
        "sector": uni["sector"].reindex(df.index).astype(str).to_numpy(dtype=object),
        "market_cap": market_cap,
        "cap_tier": np.array([params.portfolio.market_cap.tier_of(m) for m in market_cap], dtype=object),
        "price": price,
        "price_source": np.where(quoted, PriceSource.QUOTE.value, PriceSource.CLOSE.value).astype(object),
        "score": df["score"].to_numpy(dtype=float),
        "expected_return": df["expected_return"].to_numpy(dtype=float),
        "return_std": df["return_std"].to_numpy(dtype=float),
        "strategy": strategy,
        "take_profit": take_profit,
        "stop_loss": stop_loss,
        "pred_high": pred_high,
        "pred_low": pred_low,
        "maxdiff_side": sides[np.select([unknown, both, buy >= sell], [0, 1, 2], 3)],
        "maxdiff_avg_return": np.where(unknown, np.nan, avg),
        "maxdiff_return_std": np.where(unknown, np.nan, np.select([both, buy >= sell], [sd_both, sd_buy], sd_sell)),
        "atr": atr,
        "adv_usd": df["adv_usd"].to_numpy(dtype=float),
        "volatility": df["volatility"].to_numpy(dtype=float),
    } | {c: df[c].to_numpy(dtype=float) for c in df.columns if c.startswith("score_")}
    order = np.lexsort((cols["symbol"].astype(str), -cols["score"]))
    return pd.DataFrame({c: v[order] for c, v in cols.items()})


SCAN_COMPANIONS = (".excluded.csv", ".data_quality.csv")  # written beside `<stem>.csv` by `write_scan`


def write_scan(result: ScanResult, out: Path | str) -> list[Path]:
    """Write the opportunities (.csv or .parquet by suffix) and `<stem>.excluded.csv` beside it, and
    `<stem>.data_quality.csv` when bad rows of the data files were quarantined.

    A table made from synthetic prices (the demo market) carries a `synthetic_prices` column set to
    true on every row, so the file says so wherever it travels.
    """
    out = Path(out)
    if out.suffix not in (".csv", ".parquet"):
        raise BadInputError(f"--out {out}: use a .csv or .parquet file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    table = result.opportunities.assign(synthetic_prices=True) if result.synthetic else result.opportunities
    if out.suffix == ".csv":
        table.to_csv(out, index=False)
    else:
        table.to_parquet(out, index=False)
    ex = out.with_name(out.stem + SCAN_COMPANIONS[0])
    result.excluded.to_csv(ex, index=False)
    if not len(result.quarantined):
        return [out, ex]
    return [out, ex, write_data_quality(out.with_name(out.stem + SCAN_COMPANIONS[1]), result.quarantined)]
