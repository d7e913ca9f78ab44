"""The backtest's fast exact path changes nothing: every output equals the reference computed with the plain
formulation (the unpruned diversify MILP over every candidate, no cheap relaxation first), on a slice of
the real S&P 500 file and on the demo market.

What is checked: equity.csv and fills.csv byte for byte, and per session the picked names and their
weights in scores.parquet. A speed-up of the solver path (`diversify.exact.solve_exact`: dominance
pruning, the exact relaxation) must keep the packs, and so the whole run, identical.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from wolfkit.backtest import run_backtest
from wolfkit.config import load_params, params_from_dict
from wolfkit.diversify import exact

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data"
REAL_BARS, REAL_UNIVERSE = REAL / "sp500_ohlcv_2013_2016.csv.gz", REAL / "sp500_universe_2018.csv"


def _reference(c, params, count, prune=True):
    """The plain exact pack: the MILP over every candidate row."""
    return exact.solve_milp(c, params, count)


def _both(params, start: date, end: date, tmp_path: Path, monkeypatch, provider=None):
    fast = run_backtest(params, start, end, tmp_path / "fast", provider=provider, progress=False, report=False)
    with monkeypatch.context() as m:
        calls: list[int] = []

        def reference(c, params, count, prune=True):
            calls.append(len(c))
            return _reference(c, params, count, prune)

        m.setattr(exact, "solve_exact", reference)
        ref = run_backtest(params, start, end, tmp_path / "ref", provider=provider, progress=False, report=False)
    assert calls, "the reference path really ran (the morning's targets are planned in this process)"
    return fast, ref


def _assert_identical(fast, ref) -> None:
    for f in ("equity.csv", "fills.csv"):
        assert (fast.out_dir / f).read_bytes() == (ref.out_dir / f).read_bytes(), f"{f} differs"
    a, b = (pd.read_parquet(r.out_dir / "scores.parquet") for r in (fast, ref))
    pick = ["date", "symbol", "picked", "weight"]
    pd.testing.assert_frame_equal(a[pick], b[pick])
    assert fast.summary["sharpe"] == ref.summary["sharpe"]


@pytest.mark.slow  # reads the 480,000-row file and walks ten sessions twice: ≈ 10-15 s on the shared machine
@pytest.mark.skipif(not REAL_BARS.is_file(), reason=f"real data not found: {REAL_BARS} (../shared/data is absent)")
def test_real_slice_identical_to_the_unpruned_milp(tmp_path, monkeypatch) -> None:
    """Ten sessions of 2015 over the whole real universe (498 symbols, ~146 candidates a morning)."""
    import warnings

    from wolfkit.data import get_provider

    p = params_from_dict({"data": {"source": "csv", "bars_path": str(REAL_BARS), "universe_path": str(REAL_UNIVERSE),
                                   "bad_rows": "quarantine"},
                          "scan": {"workers": 0}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the data-quality notice (bad rows quarantined)
        provider = get_provider(p)
        fast, ref = _both(p, date(2015, 6, 1), date(2015, 6, 12), tmp_path, monkeypatch, provider)
    assert fast.summary["window"]["sessions"] == 10
    assert fast.fills["layer"].eq("directional").any()  # the packs really traded
    _assert_identical(fast, ref)


def test_demo_identical_to_the_unpruned_milp(tmp_path, monkeypatch) -> None:
    """The demo market (synthetic prices), default demo parameters, five sessions."""
    p = load_params(ROOT / "parameters/demo.yaml").with_changes({"scan": {"workers": 0}})
    fast, ref = _both(p, date(2026, 10, 26), date(2026, 10, 30), tmp_path, monkeypatch)
    assert fast.summary["window"]["sessions"] == 5
    _assert_identical(fast, ref)
