"""The risk figures (`wolfkit.risk`) against a direct numpy computation, and the report's risk section
(`wolfkit.report.risk`) rendered on the demo plan."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from wolfkit import risk
from wolfkit.config import Params, load_params
from wolfkit.data.registry import provider_for
from wolfkit.orders import build_order_plan
from wolfkit.report import RECORD_MIMETYPE
from wolfkit.report.risk import plan_orders, risk_section
from wolfkit.scan import run_scan

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _returns(seed: int = 1, n: int = 250) -> pd.DataFrame:
    """Two blocks of names that move together (A*, B*), and one on its own (C)."""
    rng = np.random.default_rng(seed)
    fa, fb = rng.normal(0, 0.01, n), rng.normal(0, 0.012, n)
    cols = {
        "A1": fa + rng.normal(0, 0.003, n), "A2": fa + rng.normal(0, 0.003, n), "A3": fa + rng.normal(0, 0.004, n),
        "B1": fb + rng.normal(0, 0.003, n), "B2": fb + rng.normal(0, 0.004, n),
        "C": rng.normal(0.001, 0.02, n),
    }
    return pd.DataFrame(cols, index=pd.bdate_range("2024-01-01", periods=n))


W = pd.Series({"A1": 0.2, "A2": 0.1, "B1": 0.3, "C": 0.15})


def test_pack_volatility_and_var_match_numpy():
    r = _returns()
    x = r[W.index].to_numpy()
    w = W.to_numpy()
    sigma = np.sqrt(w @ np.cov(x.T) @ w)
    p = x @ w
    assert risk.pack_volatility(W, r) == pytest.approx(sigma, rel=1e-12)
    assert risk.var_parametric(W, r, 0.95) == pytest.approx(norm.ppf(0.95) * sigma - p.mean(), rel=1e-12)
    assert risk.var_historical(W, r, 0.95) == pytest.approx(-np.percentile(p, 5), rel=1e-12)
    assert risk.var_historical(W, r, 0.99) > risk.var_historical(W, r, 0.95) > 0
    # the pack's volatility is below the sum of its parts (diversification), above the largest single one
    stand_alone = W * r[W.index].std(ddof=1)
    assert stand_alone.max() < sigma < stand_alone.sum()


def test_dates_missing_for_a_picked_name_leave_every_figure():
    r = _returns()
    r.iloc[10:20, r.columns.get_loc("A1")] = np.nan
    kept = r.drop(index=r.index[10:20])
    assert risk.pack_volatility(W, r) == pytest.approx(risk.pack_volatility(W, kept), rel=1e-12)
    assert risk.var_historical(W, r, 0.95) == pytest.approx(risk.var_historical(W, kept, 0.95), rel=1e-12)
    assert np.isnan(risk.pack_volatility(W, r.iloc[:1]))


def test_correlation_clusters_find_the_blocks():
    corr, clusters = risk.correlation_clusters(_returns(), 0.5)
    by = clusters.groupby("cluster")["symbol"].apply(frozenset)
    assert set(by) == {frozenset({"A1", "A2", "A3"}), frozenset({"B1", "B2"}), frozenset({"C"})}
    assert list(corr.index) == list(clusters["symbol"]) == list(corr.columns)
    assert np.allclose(corr.loc["A1", "A2"], np.corrcoef(_returns()["A1"], _returns()["A2"])[0, 1])
    # a threshold of 0 joins everything whose average correlation is positive; 1 leaves each alone
    assert risk.correlation_clusters(_returns(), 1.0)[1]["cluster"].nunique() == 6


def test_daily_returns_read_only_bars_before_the_session():
    bars = pd.DataFrame({
        "symbol": ["X"] * 5 + ["Y"] * 5,
        "date": list(pd.bdate_range("2024-06-03", periods=5)) * 2,
        "close": [10, 11, 12, 13, 100, 20, 20, 22, 22, 1],
    })
    r = risk.daily_returns(bars, ["X", "Y", "Z"], date(2024, 6, 7), days=10)
    assert list(r.columns) == ["X", "Y", "Z"] and len(r) == 3  # 4 closes before the 7th, 3 returns
    assert r["X"].tolist() == pytest.approx([0.1, 1 / 11, 1 / 12])
    assert r["Z"].isna().all()
    assert len(risk.daily_returns(bars, ["X"], date(2024, 6, 7), days=2)) == 2


def test_position_table_risk_and_liquidity():
    orders = pd.DataFrame({"symbol": ["A", "B"], "layer": ["directional", "maxdiff"], "qty": [100, 10],
                           "price": [50.0, 20.0]})
    opps = pd.DataFrame({"symbol": ["A", "B"], "volatility": [0.02, 0.05], "atr": [1.5, 0.8],
                         "adv_usd": [1e6, 4e5]})
    t = risk.position_table(orders, opps, 100_000)
    a, b = t.iloc[0], t.iloc[1]
    assert a["weight"] == pytest.approx(0.05) and a["risk"] == pytest.approx(0.001)
    assert a["atr_pct"] == pytest.approx(0.03) and a["adv_share"] == pytest.approx(5000 / 1e6)
    assert b["usd"] == 200 and b["adv_share"] == pytest.approx(200 / 4e5)


@pytest.fixture(scope="module")
def demo():
    params = load_params(ROOT / "parameters" / "demo.yaml")
    session = date(2024, 6, 3)
    scan = run_scan(params, session)
    res = build_order_plan(scan.opportunities, params, equity=100_000.0, buying_power=200_000.0, as_of=session,
                           synthetic=True)
    bars = provider_for(params).daily_bars(list(scan.opportunities["symbol"]), date(2023, 1, 1), session)
    returns = risk.daily_returns(bars, list(scan.opportunities["symbol"]), session, params.scan.lookback_days)
    return params, scan, res.plan, returns


@pytest.mark.slow
def test_risk_section_renders_on_the_demo_plan(demo, monkeypatch):
    params, scan, plan, returns = demo
    shown: list[dict] = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(
        obj if isinstance(obj, dict) else {"text/markdown": obj.data}))
    r = risk_section(plan, scan.opportunities, returns, params)
    records = {b[RECORD_MIMETYPE]["name"]: b[RECORD_MIMETYPE]["value"] for b in shown if RECORD_MIMETYPE in b}
    html = "".join(b.get("text/html", "") + b.get("text/markdown", "") for b in shown)
    assert "estimated daily volatility" in html and "1-day VaR 95%" in html and "Correlation clusters" in html
    assert "Positions: volatility, ATR" in html
    assert any("application/vnd.plotly.v1+json" in b for b in shown)
    assert records["risk_daily_vol"] == pytest.approx(r.daily_vol) and 0 < r.daily_vol < 0.2
    assert r.observations >= 100
    # the section's figures are the direct computation on the plan's directional weights
    d = plan_orders(plan).query("layer == 'directional'")
    w = pd.Series((d["qty"] * d["price"] / plan.account.equity).to_numpy(), index=d["symbol"])
    x = returns[w.index].dropna().to_numpy()
    assert r.daily_vol == pytest.approx(np.sqrt(w.to_numpy() @ np.cov(x.T) @ w.to_numpy()), rel=1e-9)
    assert r.var_historical == pytest.approx(-np.percentile(x @ w.to_numpy(), 5), rel=1e-9)
    assert set(r.clusters["symbol"]) == set(w.index)
    assert len(r.positions) == len(plan.orders)


def test_pack_risk_on_params_defaults():
    r = risk.pack_risk(
        pd.DataFrame({"symbol": ["A1", "B1"], "layer": ["directional"] * 2, "qty": [200, 300], "price": [100.0] * 2}),
        pd.DataFrame({"symbol": ["A1", "B1"], "volatility": [0.01, 0.012]}), _returns(), 100_000, Params())
    assert r.level == 0.95 and r.var_parametric > 0 and r.observations == 250
