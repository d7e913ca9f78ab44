"""`data.source` picks the provider; `data.symbols` narrows its universe."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from wolfkit.config import Params
from wolfkit.data import get_provider
from wolfkit.data.demo import DemoMarket
from wolfkit.data.files import FileProvider
from wolfkit.errors import BadInputError


def _params(**data) -> Params:
    return Params.model_validate({"data": data})


def test_demo_and_demo_n() -> None:
    p = get_provider(_params(source="demo", seed=11))
    assert isinstance(p, DemoMarket) and p.seed == 11 and p.synthetic
    big = get_provider(_params(source="demo:300"))
    assert big.name == "demo:300" and len(big.universe()) == 300


def test_symbols_restrict_the_universe_but_not_the_data() -> None:
    p = get_provider(_params(source="demo", symbols=["nvda", "AAPL"]))
    assert sorted(p.universe()["symbol"]) == ["AAPL", "NVDA"] and p.synthetic and p.name == "demo"
    bars = p.daily_bars(["AAPL"], date(2026, 1, 2), date(2026, 1, 9))
    full = DemoMarket(seed=7).daily_bars(["AAPL"], date(2026, 1, 2), date(2026, 1, 9))
    assert bars.equals(full)
    with pytest.raises(BadInputError, match=r"data\.symbols: \['NOPE'\]"):
        get_provider(_params(source="demo", symbols=["AAPL", "NOPE"]))


def test_csv_source(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("date,AAA,BBB\n2024-01-02,1,2\n2024-01-03,1.1,2.1\n")
    (tmp_path / "u.csv").write_text("symbol,sector,market_cap\nAAA,Energy,1e9\nBBB,Utilities,2e9\n")
    p = get_provider(_params(source="csv", bars_path=str(tmp_path / "b.csv"), universe_path=str(tmp_path / "u.csv")))
    assert isinstance(p, FileProvider) and not p.has_ohlc and len(p.universe()) == 2


def test_alpaca_source_needs_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    with pytest.raises(BadInputError, match="APCA_API_KEY_ID"):
        get_provider(_params(source="alpaca"))
