"""The backtest tear sheet: plotly figures read from a backtest output folder, an offline `report.html`,
and the same sections for the backtest notebook.

A backtest folder (contract in DESIGN.md, "Research") holds equity.csv, fills.csv, scores.parquet,
data_quality.csv and summary.json; the statistics shown are the ones in summary.json (computed by
`wolfkit.performance.summarize`), so the report and the file never disagree. The page embeds plotly.js
once and reads without a network. Warnings (survivorship bias, synthetic prices, quarantined rows) sit
in a banner at the top.

Directional-only against both layers: run the backtest twice (`--layers directional` and
`--layers both`) and pass the other folder as `compare`; its equity curve is overlaid on this one's.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from wolfkit import performance as perf
from wolfkit import report
from wolfkit.domain import Layer
from wolfkit.errors import BadInputError

ROLLING_SHARPE_SESSIONS = 63  # a quarter of sessions
IC_ROLLING_SESSIONS = 21  # a month of sessions
DATA_QUALITY_ROWS = 20
REPORT_NAME = "report.html"
FOLDER_FILES = ("equity.csv", "fills.csv", "scores.parquet", "data_quality.csv", "summary.json")
DATA_QUALITY_COLUMNS = ("file", "line", "symbol", "date", "field", "problem", "kind")
FIGURE_TITLES = {
    "equity": "Equity against the universe's buy-and-hold and open→close",
    "drawdown": "Drawdown from the running peak",
    "rolling_sharpe": f"Rolling Sharpe ratio ({ROLLING_SHARPE_SESSIONS} sessions, annualised)",
    "monthly_returns": "Monthly returns",
    "exposure": "Exposure by layer (× equity)",
    "sector_weights": "Sector weights of the pack over time",
    "ic": f"Information coefficient per session, with its {IC_ROLLING_SESSIONS}-session mean",
    "tier_returns": "Realised open→close return by score tier (95% CI)",
    "layers": "Directional only against both layers",
}
_BENCH = {"bench_buy_hold": "equal-weight buy-and-hold", "bench_open_close": "universe open→close"}
_LAYER_COLORS = {Layer.DIRECTIONAL: "#1f77b4", Layer.MAXDIFF: "#ff7f0e"}


@dataclass(frozen=True)
class BacktestFolder:
    """The tables of one backtest output folder; `equity` is indexed by session date."""

    path: Path
    equity: pd.DataFrame
    fills: pd.DataFrame
    scores: pd.DataFrame
    data_quality: pd.DataFrame
    summary: dict[str, Any]

    @property
    def label(self) -> str:
        """How the run is named in a legend: its layers, else its run id, else its folder name."""
        return str(self.summary.get("layers") or self.summary.get("run_id") or self.path.name)


def _read(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise BadInputError(f"{path}: missing; a backtest folder holds {list(FOLDER_FILES)} (run `wolfkit backtest`)")
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame(columns=list(columns))
    except Exception as e:
        raise BadInputError(f"{path}: cannot be read ({type(e).__name__}: {e}); rewrite it with `wolfkit backtest`") from e
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise BadInputError(f"{path}: missing column(s) {missing}; the backtest folder contract needs {list(columns)}")
    return df


def read_folder(folder: str | Path) -> BacktestFolder:
    """Read a backtest output folder, checking every file and column the tear sheet needs."""
    path = Path(folder)
    if not path.is_dir():
        raise BadInputError(f"{path}: not a backtest folder; pass the --out folder of `wolfkit backtest`")
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        raise BadInputError(f"{summary_path}: missing; a backtest folder holds {list(FOLDER_FILES)}")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BadInputError(f"{summary_path}: not valid JSON (line {e.lineno}: {e.msg})") from e
    absent = [k for k in ("sharpe", "ic", "tier_returns", "benchmarks") if k not in summary]
    if absent:
        raise BadInputError(f"{summary_path}: no performance statistics ({absent} absent); merge "
                            "wolfkit.performance.summarize(...) into it before writing the report")
    equity = _read(path / "equity.csv", perf.EQUITY_COLUMNS)
    equity = equity.assign(date=pd.to_datetime(equity["date"])).sort_values("date").set_index("date")
    fills = _read(path / "fills.csv", perf.FILL_COLUMNS)
    scores = _read(path / "scores.parquet", perf.SCORE_COLUMNS)
    scores = scores.assign(date=pd.to_datetime(scores["date"]))
    dq = _read(path / "data_quality.csv", DATA_QUALITY_COLUMNS)
    return BacktestFolder(path, equity, fills, scores, dq, summary)


def _folder(folder: str | Path | BacktestFolder) -> BacktestFolder:
    return folder if isinstance(folder, BacktestFolder) else read_folder(folder)


# --------------------------------------------------------------------------------------------------
# Figures (tables in, figures out).


def _layout(fig: go.Figure, key: str, **kw: Any) -> go.Figure:
    fig.update_layout(title=FIGURE_TITLES[key], legend={"orientation": "h", "y": -0.15}, margin={"t": 60}, **kw)
    return fig


def fig_equity(bt: BacktestFolder, compare: Sequence[BacktestFolder] = ()) -> go.Figure:
    """The strategy's equity against both benchmark curves (and other runs' equity, dotted)."""
    e = bt.equity
    fig = go.Figure()
    fig.add_scatter(x=e.index, y=e["equity"], name=f"strategy ({bt.label})", line={"width": 2.5})
    for col, name in _BENCH.items():
        fig.add_scatter(x=e.index, y=e[col], name=name, line={"dash": "dash"})
    for other in compare:
        fig.add_scatter(x=other.equity.index, y=other.equity["equity"], name=f"strategy ({other.label})",
                        line={"dash": "dot"})
    return _layout(fig, "equity", yaxis={"tickprefix": "$", "tickformat": ",.0f"})


def fig_drawdown(bt: BacktestFolder) -> go.Figure:
    """Drawdown of the strategy (filled) and both benchmarks."""
    e = bt.equity
    fig = go.Figure()
    fig.add_scatter(x=e.index, y=perf.drawdown(e["equity"]), name="strategy", fill="tozeroy")
    for col, name in _BENCH.items():
        fig.add_scatter(x=e.index, y=perf.drawdown(e[col]), name=name, line={"dash": "dash"})
    return _layout(fig, "drawdown", yaxis={"tickformat": ".0%"})


def fig_rolling_sharpe(bt: BacktestFolder) -> go.Figure:
    """Rolling Sharpe of the strategy and the buy-and-hold benchmark."""
    e = bt.equity
    fig = go.Figure()
    fig.add_scatter(x=e.index[1:], y=perf.rolling_sharpe(e["equity"], ROLLING_SHARPE_SESSIONS), name="strategy")
    fig.add_scatter(x=e.index[1:], y=perf.rolling_sharpe(e["bench_buy_hold"], ROLLING_SHARPE_SESSIONS),
                    name=_BENCH["bench_buy_hold"], line={"dash": "dash"})
    fig.add_hline(y=0, line_color="grey")
    return _layout(fig, "rolling_sharpe")


def fig_monthly_returns(bt: BacktestFolder) -> go.Figure:
    """Year × month heatmap of compounded monthly returns (red losses, green gains)."""
    m = perf.monthly_returns(bt.equity["equity"])
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    text = [[("" if pd.isna(v) else f"{v:.2%}") for v in row] for row in m.to_numpy()]
    bound = float(m.abs().max().max()) if m.notna().any().any() else 0.01
    fig = go.Figure(go.Heatmap(z=m.to_numpy(), x=months, y=[str(y) for y in m.index], text=text,
                               texttemplate="%{text}", colorscale="RdYlGn", zmid=0, zmin=-bound, zmax=bound,
                               colorbar={"tickformat": ".0%"}, hoverongaps=False))
    return _layout(fig, "monthly_returns", yaxis={"autorange": "reversed", "type": "category"},
                   height=160 + 40 * len(m))


def fig_exposure(bt: BacktestFolder) -> go.Figure:
    """Gross exposure of each layer as a multiple of equity, stacked."""
    e = bt.equity
    fig = go.Figure()
    for layer in Layer:
        fig.add_scatter(x=e.index, y=e[f"gross_{layer}"] / e["equity"], name=str(layer), stackgroup="gross",
                        mode="lines", line={"color": _LAYER_COLORS[layer]})
    return _layout(fig, "exposure", yaxis={"ticksuffix": "x"})


def fig_sector_weights(bt: BacktestFolder) -> go.Figure:
    """Σ weight of the picked names by sector, each session (fractions of equity, stacked)."""
    s = bt.scores
    w = s[s["picked"].astype(bool)].pivot_table(index="date", columns="sector", values="weight", aggfunc="sum")
    fig = go.Figure()
    for sector in w.columns:
        fig.add_scatter(x=w.index, y=w[sector].fillna(0.0), name=str(sector), stackgroup="sector", mode="lines")
    return _layout(fig, "sector_weights", yaxis={"tickformat": ".0%"})


def fig_ic(bt: BacktestFolder) -> go.Figure:
    """The per-session IC as bars, its rolling mean as a line, and the overall mean as a dashed level."""
    ic = pd.DataFrame(bt.summary["ic"], columns=["date", "ic", "n"])
    fig = go.Figure()
    fig.add_bar(x=ic["date"], y=ic["ic"], name="IC per session", marker={"color": "#9ecae1"},
                customdata=ic["n"], hovertemplate="%{x}: IC %{y:.3f} over %{customdata} names<extra></extra>")
    fig.add_scatter(x=ic["date"], y=ic["ic"].rolling(IC_ROLLING_SESSIONS, min_periods=IC_ROLLING_SESSIONS).mean(),
                    name=f"{IC_ROLLING_SESSIONS}-session mean", line={"color": "#08519c", "width": 2.5})
    mean = bt.summary.get("ic_mean")
    if mean is not None:
        fig.add_hline(y=mean, line_dash="dash", annotation_text=f"mean {mean:.3f} (t {_fmt(bt.summary.get('ic_t'), 'f2')})")
    return _layout(fig, "ic", bargap=0)


def fig_tier_returns(bt: BacktestFolder) -> go.Figure:
    """Mean open→close return by score tier, all scored names and the picked ones, with 95% CIs."""
    fig = go.Figure()
    for subset, name in (("all", "all scored names"), ("picked", "picked names")):
        rows = pd.DataFrame(bt.summary["tier_returns"][subset])
        rows = rows[rows["n"] > 0]
        fig.add_bar(
            x=rows["tier"], y=rows["mean"], name=name, customdata=rows[["n", "ci_low", "ci_high"]].to_numpy(),
            hovertemplate="%{x}: mean %{y:.3%}, 95% CI [%{customdata[1]:.3%}, %{customdata[2]:.3%}], "
                          "n=%{customdata[0]}<extra></extra>",
            error_y={"type": "data", "symmetric": False, "array": (rows["ci_high"] - rows["mean"]).tolist(),
                     "arrayminus": (rows["mean"] - rows["ci_low"]).tolist()},
        )
    return _layout(fig, "tier_returns", barmode="group", yaxis={"tickformat": ".2%"}, xaxis={"type": "category"})


def fig_layers(bt: BacktestFolder, compare: Sequence[BacktestFolder] = ()) -> go.Figure:
    """Cumulative P&L of each layer in this run, and this run's equity against the `compare` runs'."""
    e = bt.equity
    fig = go.Figure()
    for layer in Layer:
        fig.add_scatter(x=e.index, y=e[f"pnl_{layer}"].cumsum(), name=f"cumulative P&L: {layer}",
                        line={"color": _LAYER_COLORS[layer]})
    fig.add_scatter(x=e.index, y=e["equity"] - e["equity"].iloc[0], name=f"equity change ({bt.label})",
                    line={"color": "black", "width": 2.5})
    for other in compare:
        fig.add_scatter(x=other.equity.index, y=other.equity["equity"] - other.equity["equity"].iloc[0],
                        name=f"equity change ({other.label})", line={"color": "black", "dash": "dot"})
    return _layout(fig, "layers", yaxis={"tickprefix": "$", "tickformat": ",.0f"})


def figures(folder: str | Path | BacktestFolder, compare: Sequence[str | Path] = ()) -> dict[str, go.Figure]:
    """Every tear-sheet figure of a backtest folder, by name (the keys of `FIGURE_TITLES`)."""
    bt = _folder(folder)
    others = [_folder(c) for c in compare]
    return {
        "equity": fig_equity(bt, others),
        "drawdown": fig_drawdown(bt),
        "rolling_sharpe": fig_rolling_sharpe(bt),
        "monthly_returns": fig_monthly_returns(bt),
        "exposure": fig_exposure(bt),
        "sector_weights": fig_sector_weights(bt),
        "ic": fig_ic(bt),
        "tier_returns": fig_tier_returns(bt),
        "layers": fig_layers(bt, others),
    }


# --------------------------------------------------------------------------------------------------
# Tables.


def _fmt(value: Any, kind: str) -> str:
    """One number for a reader: pct (12.34%), x (1.30x), f2 (1.23), usd ($1,234), int."""
    if value is None:
        return "–"
    return {"pct": f"{value:.2%}", "x": f"{value:.2f}x", "f2": f"{value:,.2f}", "f3": f"{value:.3f}",
            "usd": f"${value:,.0f}", "int": f"{value:,.0f}"}[kind]


_CURVE_ROWS = [("CAGR", "cagr", "pct"), ("volatility", "volatility", "pct"), ("Sharpe", "sharpe", "f2"),
               ("Sortino", "sortino", "f2"), ("max drawdown", "max_drawdown", "pct"),
               ("total return", "total_return", "pct")]


def stats_table(summary: dict[str, Any]) -> pd.DataFrame:
    """Return and risk statistics of the strategy and both benchmarks side by side, formatted."""
    bench = summary["benchmarks"]
    rows = [(label, _fmt(summary.get(k), kind), _fmt(bench["buy_hold"].get(k), kind),
             _fmt(bench["open_close"].get(k), kind)) for label, k, kind in _CURVE_ROWS]
    return pd.DataFrame(rows, columns=["statistic", "strategy", _BENCH["bench_buy_hold"], _BENCH["bench_open_close"]])


def trading_table(summary: dict[str, Any]) -> pd.DataFrame:
    """The strategy's drawdown dates, trading and edge statistics, formatted."""
    dd = " → ".join(str(summary.get(k) or "not recovered") for k in
                    ("max_drawdown_peak", "max_drawdown_trough", "max_drawdown_recovery")) \
        if summary.get("max_drawdown_peak") else "–"
    exp = summary.get("exposure", {})
    rows = [
        ("max drawdown: peak → trough → recovery", dd),
        ("turnover (traded notional ÷ average equity, per year)", _fmt(summary.get("turnover"), "f2")),
        ("fees: total; per year as a share of average equity",
         f"{_fmt(summary.get('fees'), 'usd')}; {_fmt(summary.get('fees_pct'), 'pct')}"),
        ("hit rate (closed round trips with P&L > 0)",
         f"{_fmt(summary.get('hit_rate'), 'pct')} of {_fmt(summary.get('round_trips'), 'int')}"),
        ("exposure: directional / maxdiff / total",
         " / ".join(_fmt(exp.get(k), "x") for k in ("directional", "maxdiff", "total"))),
        ("IC mean (t-statistic, sessions)",
         f"{_fmt(summary.get('ic_mean'), 'f3')} (t {_fmt(summary.get('ic_t'), 'f2')}, "
         f"{_fmt(summary.get('ic_sessions'), 'int')})"),
        *[(f"IC {h['half']} half ({h.get('start')} → {h.get('end')})",
           f"{_fmt(h.get('ic_mean'), 'f3')} (t {_fmt(h.get('ic_t'), 'f2')})") for h in summary.get("ic_by_half", [])],
    ]
    return pd.DataFrame(rows, columns=["statistic", "strategy"])


def tier_table(summary: dict[str, Any]) -> pd.DataFrame:
    """Realised return by tier, all names and picked names, formatted."""
    rows = []
    for subset in ("all", "picked"):
        for r in summary["tier_returns"][subset]:
            ci = f"[{_fmt(r['ci_low'], 'pct')}, {_fmt(r['ci_high'], 'pct')}]" if r["ci_low"] is not None else "–"
            rows.append((subset, r["tier"], _fmt(r["n"], "int"), _fmt(r["sessions"], "int"), _fmt(r["mean"], "pct"), ci))
    return pd.DataFrame(rows, columns=["names", "tier", "n", "sessions", "mean open→close", "95% CI"])


def data_quality_counts(dq: pd.DataFrame) -> pd.DataFrame:
    """Quarantined rows counted by problem (most frequent first)."""
    return dq.groupby(["problem", "kind"]).size().rename("rows").sort_values(ascending=False).reset_index()


def header_lines(bt: BacktestFolder) -> list[str]:
    """The run's identity: window, sessions, parameters digest, method, layers, equity, timing."""
    s = bt.summary
    w = s.get("window", {})
    return [
        f"window {w.get('start', '?')} → {w.get('end', '?')}, {w.get('sessions', '?')} sessions",
        f"parameters digest {s.get('params_digest', '?')}; method {s.get('method', '?')}; layers {s.get('layers', '?')}",
        f"starting equity {_fmt(s.get('equity_start'), 'usd')}; run id {s.get('run_id', '?')}; "
        f"ran in {_fmt(s.get('elapsed_s'), 'f2')} s",
        f"statistics by {s.get('stats_library', '?')}; folder {bt.path}",
    ]


# --------------------------------------------------------------------------------------------------
# The offline HTML page.

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 0 auto;
       padding: 1em 1.5em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.banner { background: #fff3cd; border: 2px solid #d39e00; padding: .6em 1em; margin: 1em 0; }
.banner li { font-weight: bold; }
table { border-collapse: collapse; max-width: 100%; font-size: .9em; margin: .5em 0; }
th, td { padding: .25em .6em; border-bottom: 1px solid #eee; text-align: left; }
caption { text-align: left; font-weight: bold; padding: .3em 0; }
.meta { color: #555; }
"""


def _table(df: pd.DataFrame, caption: str | None = None) -> str:
    """An HTML table of text cells, escaped (cells hold labels such as "P&L > 0" and file contents)."""
    return report.table_html(df.astype(str).map(html.escape), caption)


def _banner(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{html.escape(str(w))}</li>" for w in warnings)
    return f'<div class="banner" id="warnings"><strong>Read before trusting these numbers:</strong><ul>{items}</ul></div>'


def write_report(out_dir: str | Path, compare: Sequence[str | Path] = ()) -> Path:
    """Write `<out_dir>/report.html`: the tear sheet of the backtest in `out_dir`, readable offline.

    `compare`: other backtest folders whose equity is overlaid (e.g. the directional-only run).
    """
    bt = read_folder(out_dir)
    figs = figures(bt, compare)
    s = bt.summary
    w = s.get("window", {})
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>wolfkit backtest {html.escape(str(w.get('start', '')))} → {html.escape(str(w.get('end', '')))}</title>",
        f"<style>{_CSS}</style>",
        report.plotlyjs_bundle(),
        "</head><body>",
        f"<h1>Backtest tear sheet: {html.escape(str(w.get('start', '?')))} → {html.escape(str(w.get('end', '?')))}</h1>",
        _banner(s.get("warnings", [])),
        "<ul class='meta'>" + "".join(f"<li>{html.escape(x)}</li>" for x in header_lines(bt)) + "</ul>",
        "<h2>Key statistics</h2>",
        _table(stats_table(s)),
        _table(trading_table(s)),
    ]
    for key, fig in figs.items():
        fig.update_layout(title=None, margin={"t": 20})  # the section heading names it
        parts += [f"<h2 id='{key}'>{html.escape(FIGURE_TITLES[key])}</h2>", report.figure_html(fig)]
        if key == "tier_returns":
            parts.append(_table(tier_table(s)))
    dq = bt.data_quality
    parts.append("<h2 id='data_quality'>Data quality</h2>")
    if dq.empty:
        parts.append("<p>No rows were quarantined.</p>")
    else:
        parts += [f"<p>{len(dq):,} rows quarantined (left out of the backtest).</p>",
                  _table(data_quality_counts(dq), caption="By problem"),
                  _table(dq.head(DATA_QUALITY_ROWS), caption=f"First {min(DATA_QUALITY_ROWS, len(dq))} of {len(dq):,} rows")]
    parts.append(f"<p class='meta'>Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by wolfkit.</p></body></html>")
    path = bt.path / REPORT_NAME
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# The notebook section.


def show(folder: str | Path, compare: Sequence[str | Path] = ()) -> dict[str, go.Figure]:
    """Display the tear sheet in a notebook (banner, statistics, every figure, data quality) and record
    the headline numbers; returns the figures."""
    bt = read_folder(folder)
    figs = figures(bt, compare)
    s = bt.summary
    warnings = s.get("warnings", [])
    report.markdown("\n".join([*(f"**⚠ {w}**\n" for w in warnings), *(f"- {x}" for x in header_lines(bt))]))
    report.table(stats_table(s), caption="Key statistics")
    report.table(trading_table(s))
    for key, fig in figs.items():
        report.show(fig)
        if key == "tier_returns":
            report.table(tier_table(s), caption="Realised return by score tier")
    if len(bt.data_quality):
        report.table(data_quality_counts(bt.data_quality), caption=f"{len(bt.data_quality):,} rows quarantined, by problem")
        report.table(bt.data_quality.head(DATA_QUALITY_ROWS).astype(str), caption="First quarantined rows")
    else:
        report.markdown("No rows were quarantined.")
    report.record("backtest_out_dir", bt.path)
    report.record("backtest_figures", list(figs))
    report.record("backtest_warnings", warnings)
    report.record("backtest_stats", {k: s.get(k) for k in (
        "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "turnover", "fees", "hit_rate", "round_trips",
        "exposure", "ic_mean", "ic_t", "ic_sessions", "ic_by_half")})
    report.record("backtest_window", s.get("window"))
    report.record("backtest_quarantined", len(bt.data_quality))
    return figs
