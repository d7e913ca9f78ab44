"""The parameter model: defaults, files, `extends:`, and one clear message per impossible value."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest
import yaml

from wolfkit.config import Params, load_params, params_from_dict
from wolfkit.errors import BadInputError

PARAMS = Path(__file__).resolve().parents[1] / "parameters"


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_default_yaml_documents_exactly_the_model_defaults():
    assert load_params(PARAMS / "default.yaml") == Params()


@pytest.mark.parametrize("name", ["default.yaml", "demo.yaml", "paper.yaml"])
def test_shipped_parameter_files_are_valid(name):
    p = load_params(PARAMS / name)
    assert p.portfolio.sector_cap == 0.30
    assert p.leverage.directional_max == 1.3 and p.leverage.total_max == 1.5


def test_paper_file_trades_paper_with_alpaca_data_and_holds_no_secrets():
    p = load_params(PARAMS / "paper.yaml")
    assert (p.execution.broker, p.data.source) == ("paper", "alpaca")
    text = (PARAMS / "paper.yaml").read_text().lower()
    assert "secret_key:" not in text and "key_id:" not in text


def test_extends_overrides_only_what_differs(tmp_path):
    write(tmp_path, "portfolio:\n  sector_cap: 0.25\n", "base.yaml")
    child = write(tmp_path, "extends: base.yaml\nportfolio:\n  target_positions: 11\n")
    p = load_params(child)
    assert p.portfolio.sector_cap == 0.25 and p.portfolio.target_positions == 11
    assert p.portfolio.position_max == 0.12


def test_extends_loop_is_reported(tmp_path):
    write(tmp_path, "extends: b.yaml\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(BadInputError, match="loop"):
        load_params(tmp_path / "a.yaml")


def test_unknown_key_is_rejected_with_its_path(tmp_path):
    f = write(tmp_path, "portfolio:\n  sector_cpa: 0.2\n")
    with pytest.raises(BadInputError) as e:
        load_params(f)
    msg = str(e.value)
    assert str(f) in msg and "portfolio.sector_cpa" in msg and "unknown key" in msg


def test_malformed_yaml_names_file_and_line(tmp_path):
    f = write(tmp_path, "portfolio:\n  sector_cap: [0.3\n  min_score: 70\n")
    with pytest.raises(BadInputError, match=r"p\.yaml.*line \d+"):
        load_params(f)


def test_missing_file_says_so(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        load_params(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "patch, path, fragment",
    [
        ({"portfolio": {"sector_cap": -0.1}}, "portfolio.sector_cap", "given -0.1"),
        ({"portfolio": {"position_min": 0.2, "position_max": 0.1}}, "portfolio", "position_min 0.2 > position_max 0.1"),
        ({"portfolio": {"min_positions": 16}}, "portfolio", "min_positions <= target_positions"),
        ({"portfolio": {"tiers": [{"min_score": 90, "weight_min": 0.10, "weight_max": 0.20}, {"min_score": 70, "weight_min": 0.05, "weight_max": 0.06}]}}, "portfolio", "outside the position bounds"),
        ({"portfolio": {"tiers": [{"min_score": 70, "weight_min": 0.05, "weight_max": 0.06}, {"min_score": 90, "weight_min": 0.10, "weight_max": 0.12}]}}, "portfolio", "strictly decreasing"),
        ({"portfolio": {"tiers": [{"min_score": 90, "weight_min": 0.12, "weight_max": 0.10}]}}, "portfolio.tiers.0", "weight_min 0.12 > weight_max 0.1"),
        ({"portfolio": {"max_positions": 15, "position_max": 0.05}}, "portfolio", "cannot reach the target allocation"),
        ({"portfolio": {"market_cap": {"bands": {"mega": [0.6, 0.7], "large": [0.5, 0.6]}}}}, "portfolio.market_cap.bands", "minimum shares sum to 1.10"),
        ({"portfolio": {"market_cap": {"bands": {"mega": [0.5, 0.2]}}}}, "portfolio.market_cap.bands", "min <= max"),
        ({"portfolio": {"market_cap": {"thresholds": {"mega": 1e9, "large": 10e9, "mid": 2e9, "small": 3e8}}}}, "portfolio.market_cap.thresholds", "strictly decreasing"),
        ({"leverage": {"directional_max": 1.6}}, "leverage", "directional_max 1.6 > total_max 1.5"),
        ({"leverage": {"maxdiff_time_shares": [{"start": "11:00", "share": 0.4}, {"start": "09:30", "share": 0.2}]}}, "leverage", "strictly increasing"),
        ({"leverage": {"maxdiff_time_shares": [{"start": "09:30", "share": 1.4}]}}, "leverage.maxdiff_time_shares.0.share", "given 1.4"),
        ({"maxdiff": {"buy_ramp": [1.005, 1.001]}}, "maxdiff", "buy_ramp"),
        ({"scan": {"signals": {"momentum": -1}}}, "scan.signals", ">= 0"),
        ({"data": {"source": "bloomberg"}}, "data.source", "demo, demo:N, csv, parquet or alpaca"),
        ({"data": {"source": "csv"}}, "data", "needs data.bars_path"),
        ({"execution": {"broker": "prod"}}, "execution.broker", "given 'prod'"),
    ],
)
def test_impossible_values_get_one_clear_message(patch, path, fragment):
    with pytest.raises(BadInputError) as e:
        params_from_dict(patch, "parameters/x.yaml")
    msg = str(e.value)
    assert msg.startswith("parameters/x.yaml: invalid parameters")
    assert f"\n  {path}" in msg, msg
    assert fragment in msg, msg


def test_all_errors_are_listed_at_once():
    with pytest.raises(BadInputError) as e:
        params_from_dict({"portfolio": {"sector_cap": 2, "min_score": 120}, "scan": {"atr_period": 0}})
    msg = str(e.value)
    assert "portfolio.sector_cap" in msg and "portfolio.min_score" in msg and "scan.atr_period" in msg


def test_helpers_tier_band_cap_and_time_share():
    p = Params()
    assert p.portfolio.band_for(95).weight_max == 0.12
    assert p.portfolio.band_for(80).weight_min == 0.07
    assert p.portfolio.band_for(72).weight_min == 0.05
    assert p.portfolio.band_for(69.9) is None
    mc = p.portfolio.market_cap
    assert [mc.tier_of(x) for x in (3e12, 50e9, 5e9, 1e9, 1e8)] == ["mega", "large", "mid", "small", "micro"]
    assert mc.tier_of(200e9) == "mega" and mc.tier_of(300e6) == "small"
    lev = p.leverage
    assert [lev.maxdiff_share_at(time(h, m)) for h, m in [(9, 30), (10, 59), (11, 0), (13, 59), (14, 0), (15, 59)]] == [
        0.2, 0.2, 0.4, 0.4, 0.6, 0.6,
    ]
    q = params_from_dict({"portfolio": {"sector_caps": {"Energy": 0.2}}})
    assert q.portfolio.cap_for("Energy") == 0.2 and q.portfolio.cap_for("Utilities") == 0.3


def test_digest_is_stable_and_sensitive():
    a, b = Params(), Params()
    assert a.digest() == b.digest()
    c = params_from_dict({"portfolio": {"sector_cap": 0.25}})
    assert c.digest() != a.digest()


def test_round_trip_through_yaml(tmp_path):
    p = params_from_dict({"portfolio": {"sector_caps": {"Energy": 0.2}}, "data": {"source": "demo:300"}})
    f = write(tmp_path, p.to_yaml())
    assert load_params(f) == p
    assert yaml.safe_load(p.to_yaml())["data"]["source"] == "demo:300"
