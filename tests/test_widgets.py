"""The tuning panel, without a kernel: moving a control recomputes the preview; an impossible
combination is reported and not applied; saving writes a parameter file that `wolfkit.config` loads
back to exactly the proposed set, and never overwrites one."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from wolfkit.config import load_params
from wolfkit.errors import WolfkitError
from wolfkit.widgets import TuningPanel, flatten, overrides, params_diff

ROOT = Path(__file__).resolve().parents[1]
SECTORS = ["Technology", "Health Care", "Financials", "Energy", "Industrials", "Consumer Discretionary", "Utilities"]


@pytest.fixture(scope="module")
def opps() -> pd.DataFrame:
    """60 candidates over 7 sectors and every cap tier, scores spread 99 → 40 (test input, not market data)."""
    rng = np.random.default_rng(1)
    n = 60
    return pd.DataFrame({
        "symbol": [f"S{i:02d}" for i in range(n)],
        "sector": [SECTORS[i % 7] for i in range(n)],
        "market_cap": rng.choice([500e9, 50e9, 5e9, 1e9], n),
        "price": rng.uniform(10, 300, n).round(2),
        "score": np.linspace(99, 40, n),
        "expected_return": rng.uniform(0.001, 0.01, n),
        "return_std": rng.uniform(0.01, 0.03, n),
        "strategy": "simple",
    })


@pytest.fixture()
def panel(opps, tmp_path) -> TuningPanel:
    base = tmp_path / "params"
    base.mkdir()
    (base / "default.yaml").write_text((ROOT / "parameters/default.yaml").read_text())
    (base / "demo.yaml").write_text((ROOT / "parameters/demo.yaml").read_text())
    return TuningPanel(load_params(base / "demo.yaml"), opps, 100_000.0, 200_000.0, date(2026, 11, 20),
                       base_path=base / "demo.yaml", save_dir=base)


def test_initial_preview_is_the_current_set(panel):
    s = panel.summary()
    assert s["error"] is None and 10 <= s["positions"] <= 15 and s["allocation"] == pytest.approx(0.95)
    assert panel.diff().empty and "No change" in panel.diff_html.value
    assert set(panel.figures) == {"weights", "sectors", "leverage"}
    assert "positions</b>" in panel.summary_html.value


def test_every_issue_control_is_there(panel):
    keys = set(panel.controls)
    assert {"method", "sector_cap", "position_bounds", "positions", "target_positions", "directional_max",
            "total_max"} <= keys
    assert {f"sector_caps.{s}" for s in SECTORS} <= keys
    assert {"tiers.0.band", "tiers.2.min_score", "cap_bands.micro", "time_shares.0", "time_shares.2"} <= keys


def test_moving_sector_cap_recomputes_the_preview(panel):
    before, n = panel.summary(), panel.recomputed
    assert before["max_sector_weight"] > 0.2 + 1e-9
    panel.controls["sector_cap"].value = 0.2
    after = panel.summary()
    assert panel.recomputed == n + 1, "one recompute per move (sector sliders follow silently)"
    assert after["max_sector_weight"] <= 0.2 + 1e-9 and after != before
    assert all(v <= 0.2 + 1e-9 for v in panel.build.targets.sector_weights.values())
    assert panel.diff()["key"].tolist() == ["portfolio.sector_cap"]
    assert panel.controls["sector_caps.Energy"].value == pytest.approx(0.2), "untouched sectors follow"
    assert "portfolio.sector_cap" in panel.diff_html.value


def test_per_sector_override(panel):
    panel.controls["sector_caps.Technology"].value = 0.1
    assert panel.params.portfolio.sector_caps == {"Technology": 0.1}
    assert panel.build.targets.sector_weights.get("Technology", 0.0) <= 0.1 + 1e-9
    panel.controls["sector_cap"].value = 0.25
    assert panel.controls["sector_caps.Technology"].value == pytest.approx(0.1), "an override stays put"


def test_method_and_leverage_controls(panel):
    panel.controls["method"].value = "greedy"
    assert panel.summary()["method"] == "greedy"
    panel.controls["directional_max"].value = 1.0
    assert panel.params.leverage.directional_max == 1.0
    assert panel.figures["leverage"].data[0].x[0] <= 1.0 + 1e-9


def test_impossible_combination_is_reported_not_applied(panel):
    good = panel.summary()
    panel.controls["tiers.0.band"].value = (0.2, 0.25)  # outside the position bounds [5%, 12%]
    s = panel.summary()
    assert "position bounds" in s["error"] and "Not applied" in panel.summary_html.value
    assert {k: v for k, v in s.items() if k != "error"} == {k: v for k, v in good.items() if k != "error"}
    assert panel.params.portfolio.tiers[0].weight_max == 0.12, "the last valid set stays in force"
    panel.controls["tiers.0.band"].value = (0.1, 0.12)
    assert panel.summary()["error"] is None


def test_save_writes_a_valid_extends_file_with_only_the_changes(panel):
    panel.controls["sector_cap"].value = 0.25
    panel.controls["sector_caps.Utilities"].value = 0.1
    panel.controls["time_shares.1"].value = 0.5
    path = panel.save("tight")
    raw = yaml.safe_load(path.read_text())
    assert raw["extends"] == "demo.yaml" and raw["name"] == "tight"
    assert raw["portfolio"] == {"sector_cap": 0.25, "sector_caps": {"Utilities": 0.1}}
    loaded = load_params(path)
    assert loaded.model_copy(update={"name": panel.params.name}) == panel.params
    assert loaded.leverage.maxdiff_time_shares[1].share == 0.5
    with pytest.raises(WolfkitError, match="never overwritten"):
        panel.save("tight")
    with pytest.raises(WolfkitError, match="letters, digits"):
        panel.save("../evil")


def test_save_button_reports_the_diff(panel):
    panel.controls["cash_reserve"].value = 0.1
    panel.name.value = "cash10"
    panel.save_button.click()
    assert "Saved" in panel.save_status.value and "1 change" in panel.save_status.value
    assert (panel.save_dir / "cash10.yaml").is_file()


def test_save_elsewhere_writes_the_full_set(panel, tmp_path):
    panel.save_dir = tmp_path / "elsewhere"
    panel.controls["method"].value = "greedy"
    raw = yaml.safe_load(panel.save("full").read_text())
    assert "extends" not in raw and raw["portfolio"]["method"] == "greedy" and "data" in raw


def test_diff_helpers():
    a = load_params(ROOT / "parameters/demo.yaml")
    b = a.with_changes({"portfolio": {"sector_cap": 0.2}})
    d = params_diff(a, b)
    assert d.to_dict("records") == [{"key": "portfolio.sector_cap", "current": 0.3, "proposed": 0.2}]
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "t": [{"x": 1}]}) == {"a.b": 1, "a.c": [1, 2], "t.0.x": 1}
    assert overrides({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 1, "c": 5}, "d": 3}) == {"a": {"c": 5}}


def test_the_preview_is_the_pack_premarket_builds_under_the_calibrated_objective(opps, tmp_path):
    """Given the session's calibration (as the tune notebook passes it), the preview packs by the same
    calibrated objective as `build_order_plan` in the pre-market run — not by the raw one."""
    from wolfkit.calibration import fit
    from wolfkit.orders import build_order_plan

    p = load_params(ROOT / "parameters/demo.yaml").with_changes({"portfolio": {"objective": "calibrated"}})
    rng = np.random.default_rng(7)
    scores = rng.uniform(40, 100, 20_000)
    # a calibration that pays the lower scores more: the calibrated pack differs from the score-ranked one
    pairs = pd.DataFrame({"date": pd.Timestamp("2026-11-19"), "symbol": [f"S{i}" for i in range(scores.size)],
                          "score": scores, "realised": (100 - scores) * 1e-4 + rng.normal(0, 0.02, scores.size)})
    cal = fit(pairs, p.portfolio.calibration)
    assert cal.ready
    panel_ = TuningPanel(p, opps, 100_000.0, 200_000.0, date(2026, 11, 20), save_dir=tmp_path, calibration=cal)
    want = build_order_plan(opps, p, equity=100_000.0, buying_power=200_000.0, as_of=date(2026, 11, 20),
                            run_id="tune", calibration=cal).plan
    raw = build_order_plan(opps, p, equity=100_000.0, buying_power=200_000.0, as_of=date(2026, 11, 20),
                           run_id="tune").plan
    got = panel_.build.plan
    assert [(o.symbol, o.qty) for o in got.orders] == [(o.symbol, o.qty) for o in want.orders]
    assert [(o.symbol, o.qty) for o in got.orders] != [(o.symbol, o.qty) for o in raw.orders]
