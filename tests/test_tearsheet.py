"""The backtest tear sheet on a small generated folder: every figure present and fed by the folder's
data, plotly.js embedded once (no CDN), the warnings banner at the top, the numbers those of
`performance.summarize`, the data-quality table, a compared run overlaid, and clear errors for a
folder that breaks the contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from backtest_folder import WARNINGS, write

from wolfkit import tearsheet
from wolfkit.errors import BadInputError


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("bt")
    return write(root / "both"), write(root / "directional", layers="directional")


@pytest.fixture(scope="module")
def page(folders):
    both, directional = folders
    path = tearsheet.write_report(both, compare=[directional])
    return path, path.read_text(encoding="utf-8")


def test_figures_are_all_there_and_carry_the_folder_data(folders):
    both, directional = folders
    figs = tearsheet.figures(both, compare=[directional])
    assert list(figs) == list(tearsheet.FIGURE_TITLES)
    for key, fig in figs.items():
        assert fig.layout.title.text == tearsheet.FIGURE_TITLES[key] and len(fig.data) >= 1, key
    eq = pd.read_csv(both / "equity.csv")
    names = [t.name for t in figs["equity"].data]
    assert names == ["strategy (both)", "equal-weight buy-and-hold", "universe open→close", "strategy (directional)"]
    assert list(figs["equity"].data[0].y) == pytest.approx(eq["equity"].tolist())
    summary = json.loads((both / "summary.json").read_text())
    assert list(figs["ic"].data[0].y) == pytest.approx([r["ic"] for r in summary["ic"]])
    tiers = figs["tier_returns"].data
    assert [t.name for t in tiers] == ["all scored names", "picked names"]
    assert list(tiers[0].x) == [r["tier"] for r in summary["tier_returns"]["all"] if r["n"]]
    upper = [r["ci_high"] - r["mean"] for r in summary["tier_returns"]["all"] if r["n"]]
    assert list(tiers[0].error_y.array) == pytest.approx(upper)
    sectors = figs["sector_weights"].data
    assert len(sectors) == 5 and sum(t.y[0] for t in sectors) == pytest.approx(0.95)
    assert figs["monthly_returns"].data[0].z.shape == (1, 12)  # one year, twelve month columns
    md = [t for t in figs["exposure"].data if t.name == "maxdiff"][0]
    assert max(md.y) > 0
    assert [t.name for t in figs["layers"].data][-1] == "equity change (directional)"


def test_report_embeds_plotlyjs_once_and_no_cdn(page):
    path, html = page
    assert path.name == "report.html"
    assert html.count("plotly.js v") == 1 and "window.__wkDefine" in html
    assert not re.search(r"<script[^>]+src=", html), "no external script: the page reads offline"
    head, body = html.split("</head>", 1)
    assert "plotly.js v" in head and "cdn.plot.ly" not in body
    assert body.count("Plotly.newPlot") == len(tearsheet.FIGURE_TITLES)
    assert body.count("<h1") == 1


def test_report_shows_the_warnings_banner_first(page):
    html = page[1].split("</head>", 1)[1]
    banner = html.index('class="banner"')
    assert banner < html.index("Key statistics") and banner < html.index("Plotly.newPlot")
    for w in WARNINGS:
        assert w in html
    assert "survivorship bias" in html[banner:banner + 1000] and "synthetic prices" in html[banner:banner + 1000]


def test_report_numbers_match_summarize(folders, page):
    both, _ = folders
    _, html = page
    s = json.loads((both / "summary.json").read_text())
    for value in (f"{s['cagr']:.2%}", f"{s['sharpe']:,.2f}", f"{s['sortino']:,.2f}", f"{s['max_drawdown']:.2%}",
                  f"{s['volatility']:.2%}", f"{s['turnover']:,.2f}", f"{s['hit_rate']:.2%} of {s['round_trips']:,}",
                  f"{s['ic_mean']:.3f} (t {s['ic_t']:,.2f}, {s['ic_sessions']})", f"${s['fees']:,.0f}",
                  f"{s['benchmarks']['buy_hold']['sharpe']:,.2f}", f"{s['benchmarks']['open_close']['cagr']:.2%}",
                  f"{s['exposure']['directional']:.2f}x", s["params_digest"]):
        assert value in html, value
    for half in s["ic_by_half"]:
        assert f"{half['ic_mean']:.3f} (t {half['ic_t']:,.2f})" in html
    assert "P&amp;L &gt; 0" in html, "cell text is escaped"
    top = s["tier_returns"]["all"][0]
    assert f"[{top['ci_low']:.2%}, {top['ci_high']:.2%}]" in html


def test_report_data_quality_counts_and_first_rows(folders, page):
    both, _ = folders
    _, html = page
    section = html[html.index("id='data_quality'"):]
    assert "25 rows quarantined" in section and "First 20 of 25 rows" in section
    counts = tearsheet.data_quality_counts(pd.read_csv(both / "data_quality.csv"))
    assert counts["rows"].tolist() == [22, 3] and counts["problem"].iloc[0] == "empty price cell"
    assert section.count("bars.csv.gz") == 20


def test_tables_fit_the_page(folders):
    both, _ = folders
    s = json.loads((both / "summary.json").read_text())
    for df in (tearsheet.stats_table(s), tearsheet.trading_table(s), tearsheet.tier_table(s)):
        assert len(df.columns) <= 6 and df.map(lambda v: len(str(v))).max().max() <= 60


def test_a_clean_folder_says_nothing_was_quarantined(tmp_path):
    f = write(tmp_path / "clean", sessions=10, names=15)
    (f / "data_quality.csv").write_text("file,line,symbol,date,field,problem,kind\n")
    html = tearsheet.write_report(f).read_text()
    assert "No rows were quarantined." in html


def test_contract_breaks_are_bad_input_naming_the_file(tmp_path):
    f = write(tmp_path / "bt", sessions=10, names=15)
    (f / "fills.csv").unlink()
    with pytest.raises(BadInputError, match=r"fills.csv: missing"):
        tearsheet.figures(f)
    f = write(tmp_path / "bt2", sessions=10, names=15)
    pd.read_csv(f / "equity.csv").drop(columns="bench_open_close").to_csv(f / "equity.csv", index=False)
    with pytest.raises(BadInputError, match=r"equity.csv: missing column\(s\) \['bench_open_close'\]"):
        tearsheet.write_report(f)
    s = json.loads((f / "summary.json").read_text())
    (f / "summary.json").write_text(json.dumps({k: v for k, v in s.items() if k != "sharpe"}))
    with pytest.raises(BadInputError, match=r"summary.json: no performance statistics.*summarize"):
        tearsheet.write_report(f)
    with pytest.raises(BadInputError, match="not a backtest folder"):
        tearsheet.figures(tmp_path / "nowhere")


@pytest.mark.ui
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_report_renders_every_figure_in_a_browser_with_the_network_blocked(page):
    """`make test-ui`: the page draws all its charts offline (every request that is not the file is refused)."""
    from playwright.sync_api import sync_playwright

    path, _ = page
    refused = []
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                               args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            tab = b.new_page(viewport={"width": 1200, "height": 900})
            tab.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:")
                      else (refused.append(r.request.url), r.abort()))
            errors = []
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.goto(path.as_uri())
            tab.wait_for_function(f"document.querySelectorAll('.plotly-graph-div .main-svg').length >= "
                                  f"{len(tearsheet.FIGURE_TITLES)}", timeout=30_000)
            drawn = tab.evaluate("[...document.querySelectorAll('.plotly-graph-div')].filter(d => d._fullLayout).length")
            width = tab.evaluate("document.documentElement.scrollWidth")
        finally:
            b.close()
    assert drawn == len(tearsheet.FIGURE_TITLES) and not errors and not refused
    assert width <= 1200, "nothing is wider than the page"
