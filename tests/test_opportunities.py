"""opportunities: load csv/parquet; every bad row reported by file row and column; quarantine never silent."""

from __future__ import annotations

import pandas as pd
import pytest

from wolfkit.config import Params, params_from_dict
from wolfkit.errors import BadInputError
from wolfkit.opportunities import REQUIRED, load_opportunities, validate_opportunities


def good() -> pd.DataFrame:
    return pd.DataFrame({
        "symbol": ["AAA", "BBB", "CCC", "DDD"],
        "sector": ["Tech", "Energy", "Health", "Tech"],
        "market_cap": [3e11, 5e10, 5e9, 1e8],
        "price": [100.0, 20.0, 5.5, 0.8],
        "score": [95, 80, 71, 40],
    })


def test_valid_table_gets_cap_tiers():
    s = validate_opportunities(good(), Params(), "t")
    assert s.valid["cap_tier"].tolist() == ["mega", "large", "mid", "micro"]
    assert s.quarantined.empty


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_load_roundtrip(tmp_path, suffix):
    path = tmp_path / f"o{suffix}"
    (good().to_csv(path, index=False) if suffix == ".csv" else good().to_parquet(path))
    df = load_opportunities(path)
    assert list(df.columns[: len(REQUIRED)]) == REQUIRED and len(df) == 4


def test_load_errors(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        load_opportunities(tmp_path / "x.csv")
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(BadInputError, match="unknown suffix"):
        load_opportunities(tmp_path / "x.txt")


def bad() -> pd.DataFrame:
    df = good().astype({"price": object})
    df.loc[0, "price"] = float("nan")
    df.loc[1, "score"] = 120
    df.loc[2, "symbol"] = "AAA"
    df.loc[3, "sector"] = None
    df["maxdiff_side"] = [None, None, None, "up"]
    df["strategy"] = ["takeprofit", "moon", None, None]
    return df


def test_bad_rows_listed_by_file_row_and_column():
    with pytest.raises(BadInputError) as e:
        validate_opportunities(bad(), Params(), "opps.csv")
    msg = str(e.value)
    for text in ["opps.csv: 4 bad row(s)", "row 2: price", "row 3: score", "; strategy: must be one of",
                 "row 4: symbol: duplicate", "row 5: sector: missing", "maxdiff_side: must be one of",
                 "quarantine_bad_rows"]:
        assert text in msg, (text, msg)


def test_quarantine_sets_rows_aside_with_the_problem():
    p = params_from_dict({"portfolio": {"quarantine_bad_rows": True}})
    s = validate_opportunities(bad(), p, "t")
    assert s.valid.empty
    assert s.quarantined["row"].tolist() == [2, 3, 4, 5]
    assert s.quarantined["problem"].str.len().gt(0).all()


def test_non_numeric_and_missing_columns():
    df = good().astype({"market_cap": object})
    df.loc[1, "market_cap"] = "lots"
    with pytest.raises(BadInputError, match="row 3: market_cap: not a number"):
        validate_opportunities(df, Params(), "t")
    with pytest.raises(BadInputError, match=r"missing required column\(s\) \['score'\]"):
        validate_opportunities(good().drop(columns="score"), Params(), "t")


def test_partial_maxdiff_columns_are_a_bad_row():
    df = good().assign(pred_high=[101.0, None, None, None], pred_low=[99.0, None, None, None],
                       maxdiff_avg_return=[0.002, None, None, None], maxdiff_side=[None, None, None, None])
    with pytest.raises(BadInputError, match="row 2: maxdiff: .* go together"):
        validate_opportunities(df, Params(), "t")


def test_sp500_financials_empty_figures_are_quarantined(shared_data):
    raw = pd.read_csv(shared_data / "sp500_financials.csv")
    df = raw.rename(columns={"Symbol": "symbol", "Sector": "sector", "Price": "price", "Market Cap": "market_cap"})
    df = df[["symbol", "sector", "market_cap", "price"]].assign(score=80.0)
    p = params_from_dict({"portfolio": {"quarantine_bad_rows": True}})
    s = validate_opportunities(df, p, "sp500_financials.csv")
    empty = df["price"].isna() | df["market_cap"].isna()
    assert len(s.quarantined) == int(empty.sum()) > 0
    assert len(s.valid) + len(s.quarantined) == len(df)
