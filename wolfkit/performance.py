"""Performance statistics of a backtest: returns, risk, trading, and an honest measure of the score's edge.

`summarize(equity, fills, scores, params)` turns the tables of a backtest output folder into the
statistics `summary.json` carries (JSON-safe: no NaN, None where a number is undefined). It is pure:
tables in, a dict out.

The standard statistics (CAGR, volatility, Sharpe, Sortino, max drawdown, rolling Sharpe, monthly
returns) come from empyrical-reloaded (import name `empyrical`), the maintained fork of Quantopian's
empyrical: small, pandas-native, installs cleanly against the pinned pandas 2 / numpy 2, and its
definitions are the ones pyfolio and zipline users know (252 sessions a year, risk-free rate 0).
quantstats would have pulled in matplotlib, seaborn and yfinance for the same few formulas.

What wolfkit defines itself (no library has it in this form), each spelled out where it is computed:
turnover, hit rate over round trips, exposure by layer, the information coefficient (IC) of the score
and the realised return by score tier with confidence intervals clustered by session.
"""

from __future__ import annotations

import math
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import empyrical
import numpy as np
import pandas as pd
from scipy import stats

from wolfkit.diversify import tier_labels
from wolfkit.domain import Side
from wolfkit.report.display import jsonable

if TYPE_CHECKING:
    from wolfkit.config import Params

SESSIONS_PER_YEAR = 252
IC_MIN_NAMES = 5  # a session's rank correlation over fewer scored names is noise; it is skipped
BELOW = "below"  # the tier label of a scored name under the lowest tier's min_score
LIBRARY = f"empyrical-reloaded {version('empyrical-reloaded')}"

EQUITY_COLUMNS = ("date", "equity", "cash", "gross_directional", "gross_maxdiff", "pnl_directional",
                  "pnl_maxdiff", "fees", "bench_buy_hold", "bench_open_close")
FILL_COLUMNS = ("date", "symbol", "side", "qty", "price", "layer", "reason")
SCORE_COLUMNS = ("date", "symbol", "score", "tier", "sector", "picked", "weight", "open_to_close")
BENCHMARKS = {"buy_hold": "bench_buy_hold", "open_close": "bench_open_close"}


def _num(x: Any) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def returns(curve: pd.Series) -> pd.Series:
    """Session returns of an equity curve indexed by date; the first row is the starting point."""
    return curve.astype(float).pct_change().iloc[1:]


def curve_stats(curve: pd.Series) -> dict[str, Any]:
    """CAGR, volatility, Sharpe, Sortino and max drawdown (with its dates) of one equity curve.

    `curve`: equity in USD indexed by session date. Statistics are empyrical's, annualised over 252
    sessions with a zero risk-free rate. Drawdown dates: `peak` (the high before the worst fall),
    `trough`, and `recovery` (first session back at the peak; None if it never got back).
    """
    r = returns(curve)
    dd = curve / curve.cummax() - 1
    out: dict[str, Any] = {
        "cagr": _num(empyrical.cagr(r)) if len(r) else None,
        "volatility": _num(empyrical.annual_volatility(r)) if len(r) > 1 else None,
        "sharpe": _num(empyrical.sharpe_ratio(r)) if len(r) > 1 else None,
        "sortino": _num(empyrical.sortino_ratio(r)) if len(r) > 1 else None,
        "max_drawdown": _num(empyrical.max_drawdown(r)) if len(r) else None,
        "max_drawdown_peak": None, "max_drawdown_trough": None, "max_drawdown_recovery": None,
        "total_return": _num(curve.iloc[-1] / curve.iloc[0] - 1) if len(curve) else None,
    }
    if len(dd) and dd.min() < 0:
        trough = dd.idxmin()
        peak = curve.loc[:trough].idxmax()
        back = curve.loc[trough:][curve.loc[trough:] >= curve.loc[peak]]
        out |= {"max_drawdown_peak": peak, "max_drawdown_trough": trough,
                "max_drawdown_recovery": back.index[0] if len(back) else None}
    return out


def drawdown(curve: pd.Series) -> pd.Series:
    """The fall from the running peak at each session (0 at a new high, −0.2 twenty percent below)."""
    return curve / curve.cummax() - 1


def rolling_sharpe(curve: pd.Series, window: int = 63) -> pd.Series:
    """Annualised Sharpe ratio over the last `window` sessions (empyrical), NaN until the window fills."""
    r = returns(curve)
    return empyrical.roll_sharpe_ratio(r, window).reindex(r.index)


def monthly_returns(curve: pd.Series) -> pd.DataFrame:
    """Compounded return per calendar month (empyrical): a year × month table, NaN where no session."""
    r = returns(curve)
    m = empyrical.aggregate_returns(r, "monthly")
    table = m.unstack()
    return table.reindex(columns=range(1, 13))


def turnover(fills: pd.DataFrame, equity: pd.Series) -> float | None:
    """Traded notional per year as a multiple of average equity.

    Σ |qty × price| over every fill (buys and sells, both layers) ÷ mean equity × 252 ÷ sessions, where
    the sessions are the rows of the equity curve after its starting point. A book that buys its whole
    equity at the open and sells it at the close every day scores 2 × 252 = 504.
    """
    if len(equity) < 2:
        return None
    notional = float((fills["qty"].abs() * fills["price"]).sum()) if len(fills) else 0.0
    return _num(notional / equity.mean() * SESSIONS_PER_YEAR / (len(equity) - 1))


def round_trips(fills: pd.DataFrame) -> pd.DataFrame:
    """Closed round trips per (symbol, layer): from flat to flat, with their P&L before fees.

    Fills are taken in file order within a date (the engine writes them as they happen). A trip's P&L
    is Σ over its reducing fills of (price − average entry price) × quantity closed × direction, so a
    short that is covered lower is a win. A trip still open at the end is not counted.
    `entry_value` is what the trip put at risk: Σ price × quantity of its opening and adding fills.
    Columns: symbol, layer, opened, closed, pnl, entry_value.
    """
    rows = []
    f = fills.assign(_order=np.arange(len(fills))).sort_values(["date", "_order"], kind="stable")
    for (symbol, layer), g in f.groupby(["symbol", "layer"], sort=False):
        pos, cost, pnl, value, opened = 0.0, 0.0, 0.0, 0.0, None
        for d, side, qty, price in zip(g["date"], g["side"], g["qty"].abs(), g["price"]):
            signed = qty if side == Side.BUY else -qty
            if pos == 0:
                opened, pnl, value = d, 0.0, 0.0
            if pos == 0 or np.sign(signed) == np.sign(pos):  # opening or adding: average the entry
                cost = (cost * abs(pos) + price * qty) / (abs(pos) + qty)
                pos += signed
                value += price * qty
                continue
            closed = min(qty, abs(pos))
            pnl += (price - cost) * closed * np.sign(pos)
            pos += signed
            if abs(pos) < 1e-9:
                rows.append((symbol, layer, opened, d, pnl, value))
                pos = 0.0
            elif np.sign(pos) == np.sign(signed):  # flipped through flat: the rest opens a new trip
                rows.append((symbol, layer, opened, d, pnl, value))
                opened, pnl, cost, value = d, 0.0, price, price * abs(pos)
    return pd.DataFrame(rows, columns=["symbol", "layer", "opened", "closed", "pnl", "entry_value"])


def hit_rate(fills: pd.DataFrame) -> tuple[float | None, int]:
    """Share of closed round trips (see `round_trips`) with a positive P&L before fees, and their count."""
    trips = round_trips(fills)
    return (_num((trips["pnl"] > 0).mean()) if len(trips) else None), len(trips)


def information_coefficient(scores: pd.DataFrame) -> pd.DataFrame:
    """Per-session Spearman rank correlation of score with the session's open→close return.

    Over the names scored that session with both values known; sessions with fewer than 5 such names,
    or where either column is constant, are left out. Computed for all sessions at once as the Pearson
    correlation of within-session average ranks (Spearman's definition, ties included). Columns: date,
    ic, n.
    """
    s = scores.dropna(subset=["score", "open_to_close"])
    by = s.groupby("date", sort=True)
    rx, ry = by["score"].rank(), by["open_to_close"].rank()
    sums = pd.DataFrame({"x": rx, "y": ry, "xy": rx * ry, "xx": rx * rx, "yy": ry * ry, "date": s["date"]}) \
        .groupby("date", sort=True).agg(["sum", "count"])
    n = sums[("x", "count")]
    cov = sums[("xy", "sum")] - sums[("x", "sum")] * sums[("y", "sum")] / n
    vx = sums[("xx", "sum")] - sums[("x", "sum")] ** 2 / n
    vy = sums[("yy", "sum")] - sums[("y", "sum")] ** 2 / n
    ok = (n >= IC_MIN_NAMES) & (vx > 1e-12) & (vy > 1e-12)
    ic = (cov / np.sqrt(vx * vy))[ok].clip(-1.0, 1.0)
    return pd.DataFrame({"date": ic.index, "ic": ic.to_numpy(), "n": n[ok].astype(int).to_numpy()})


def ic_stats(ic: pd.Series) -> dict[str, Any]:
    """Mean IC and the t-statistic of that mean (one-sample t-test against 0, sessions independent)."""
    n = len(ic)
    t = stats.ttest_1samp(ic, 0.0).statistic if n > 1 and ic.std() > 1e-12 else None
    return {"ic_mean": _num(ic.mean()) if n else None, "ic_t": _num(t), "ic_sessions": n}


def ic_by_half(ic: pd.DataFrame) -> list[dict[str, Any]]:
    """IC mean and t in the first and the second half of the sessions that have an IC.

    A real edge shows in both halves; one that flips sign is the instability to see before trading.
    """
    half = (len(ic) + 1) // 2
    out = []
    for name, part in (("first", ic.iloc[:half]), ("second", ic.iloc[half:])):
        out.append({"half": name, "start": part["date"].iloc[0] if len(part) else None,
                    "end": part["date"].iloc[-1] if len(part) else None, **ic_stats(part["ic"])})
    return out


def mean_ci(values: pd.Series, sessions: pd.Series, level: float = 0.95) -> dict[str, Any]:
    """Mean of `values` with a confidence interval clustered by session.

    Names scored the same day share the day's market move, so they are not independent: the standard
    error is the cluster-robust one, √(Σ_sessions (Σ_names (x − mean))²) ÷ n × √(G ÷ (G − 1)), with a
    t quantile on G − 1 degrees of freedom (G sessions). With one session there is no interval.
    """
    x = values.astype(float)
    n, groups = len(x), sessions.nunique()
    out: dict[str, Any] = {"n": n, "sessions": int(groups), "mean": _num(x.mean()) if n else None,
                           "ci_low": None, "ci_high": None}
    if n and groups > 1:
        resid = (x - x.mean()).groupby(sessions.to_numpy()).sum()
        se = math.sqrt(float((resid**2).sum())) / n * math.sqrt(groups / (groups - 1))
        q = stats.t.ppf(0.5 + level / 2, groups - 1)
        out |= {"ci_low": _num(x.mean() - q * se), "ci_high": _num(x.mean() + q * se)}
    return out


def tier_returns(scores: pd.DataFrame, params: Params) -> dict[str, list[dict[str, Any]]]:
    """Realised open→close return by score tier, for every scored name (`all`) and the picked ones.

    Tiers in the parameters' order (highest first), then `below`; a tier with no names has n = 0.
    Each row: tier, n, sessions, mean, ci_low, ci_high (95%, clustered by session — see `mean_ci`).
    """
    order = [*tier_labels(params), BELOW]
    s = scores.dropna(subset=["open_to_close"])
    extra = [t for t in s["tier"].astype(str).unique() if t not in order]
    out = {}
    for subset, part in (("all", s), ("picked", s[s["picked"].astype(bool)])):
        tiers = part["tier"].astype(str)
        out[subset] = [{"tier": t, **mean_ci(part.loc[tiers == t, "open_to_close"], part.loc[tiers == t, "date"])}
                       for t in order + extra]
    return out


def _dated(df: pd.DataFrame, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    from wolfkit.errors import BadInputError

    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise BadInputError(f"{name}: missing column(s) {missing}; the backtest folder contract needs {list(columns)}")
    return df.assign(date=pd.to_datetime(df["date"]))


def summarize(equity: pd.DataFrame, fills: pd.DataFrame, scores: pd.DataFrame, params: Params) -> dict[str, Any]:
    """The statistics of one backtest, JSON-safe (None where undefined), for `summary.json` and reports.

    `equity`, `fills`, `scores`: the folder's `equity.csv`, `fills.csv` and `scores.parquet` tables.
    Exposure by layer is the time average of gross_<layer> ÷ equity (× equity, so 1.3 is 1.3x). `fees`
    is the total in USD and `fees_pct` the same as a share of average equity per year.
    """
    eq = _dated(equity, "equity.csv", EQUITY_COLUMNS).sort_values("date").set_index("date")
    fl = _dated(fills, "fills.csv", FILL_COLUMNS)
    sc = _dated(scores, "scores.parquet", SCORE_COLUMNS)
    curve = eq["equity"].astype(float)
    hits, trips = hit_rate(fl)
    ic = information_coefficient(sc)
    mean_equity = curve.mean() if len(curve) else float("nan")
    years = (len(curve) - 1) / SESSIONS_PER_YEAR
    out: dict[str, Any] = {
        "stats_library": LIBRARY,
        **curve_stats(curve),
        "turnover": turnover(fl, curve),
        "fees": _num(eq["fees"].sum()),
        "fees_pct": _num(eq["fees"].sum() / mean_equity / years) if years else None,
        "hit_rate": hits,
        "round_trips": trips,
        "exposure": {
            "directional": _num((eq["gross_directional"] / curve).mean()),
            "maxdiff": _num((eq["gross_maxdiff"] / curve).mean()),
            "total": _num(((eq["gross_directional"] + eq["gross_maxdiff"]) / curve).mean()),
        },
        **ic_stats(ic["ic"]),
        "ic": [{"date": d, "ic": _num(v), "n": int(n)} for d, v, n in ic.itertuples(index=False)],
        "ic_by_half": ic_by_half(ic),
        "tier_returns": tier_returns(sc, params),
        "benchmarks": {name: curve_stats(eq[col].astype(float)) for name, col in BENCHMARKS.items()},
    }
    return jsonable(_dates(out))


def _dates(value: Any) -> Any:
    """Session timestamps as plain dates (`2016-12-30`, not `2016-12-30T00:00:00`)."""
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dict):
        return {k: _dates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates(v) for v in value]
    return value
