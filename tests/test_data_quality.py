"""Data quality for research: compressed files, bad rows (stop or quarantine, never silent), one-day
jumps from spin-offs and bad prints (causal), survivorship warnings, and the data_quality.csv the
scan writes. Rules on small synthetic files; the known dirt of the real S&P 500 file in ../shared/data."""

from __future__ import annotations

import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wolfkit.config import BadRows, Params, load_params, params_from_dict
from wolfkit.data import get_provider
from wolfkit.data.files import FileProvider
from wolfkit.data.quality import (
    DATA_QUALITY_COLUMNS,
    JUMP_COLUMNS,
    QUARANTINE_COLUMNS,
    find_jumps,
    survivorship_warning,
    write_data_quality,
)
from wolfkit.errors import BadInputError

BARS = "sp500_ohlcv_2013_2016.csv.gz"
UNIVERSE = "sp500_universe_2018.csv"
UNIVERSE_CSV = "symbol,sector,market_cap\nAAA,Energy,5e9\nBBB,Utilities,3e8\n"
LONG_CSV = (
    "symbol,date,open,high,low,close,volume\n"
    "AAA,2024-01-02,10,11,9.5,10.5,1000\n"
    "AAA,2024-01-03,10.5,11.2,10.1,11,1200\n"
    "BBB,2024-01-02,20,21,19,20.5,500\n"
    "BBB,2024-01-03,20.5,21.5,20,21,700\n"
)
# line numbers as in a text editor: the header is line 1
DIRTY_CSV = (
    "symbol,date,open,high,low,close,volume\n"      # 1
    "AAA,2024-01-02,10,11,9.5,10.5,1000\n"          # 2 good
    "AAA,2024-01-03,,11.2,10.1,11,1200\n"           # 3 empty open
    "AAA,2024-01-04,11,11.5,10.8,11.51,900\n"       # 4 close 1 cent above high: rounding, kept
    "AAA,2024-01-05,11,11.5,10.8,11.6,900\n"        # 5 close 10 cents above high
    "AAA,2024-01-08,11,11.5,10.8,11.2,900\n"        # 6 good
    "AAA,2024-01-08,11,11.5,10.8,11.2,900\n"        # 7 duplicate of line 6
    "BBB,2024-01-02,0,21,19,20.5,500\n"             # 8 non-positive open
    "BBB,2024-01-03,20.5,21.5,20,abc,700\n"         # 9 close not a number
    "BBB,2024-01-04,,,,21,0\n"                      # 10 three empty cells: one row, three problems
    "BBB,2024-01-05,20.5,19,20,19.5,700\n"          # 11 high < low
    "BBB,2024-01-08,20.5,21.5,20,21,700\n"          # 12 good
)


def _write(tmp_path: Path, bars: str, name: str = "bars.csv", universe: str = UNIVERSE_CSV) -> tuple[Path, Path]:
    b, u = tmp_path / name, tmp_path / "universe.csv"
    b.write_text(bars)
    u.write_text(universe)
    return b, u


def _quarantine(b: Path, u: Path, **kw) -> FileProvider:
    with pytest.warns(UserWarning, match="quarantined"):
        return FileProvider(b, u, bad_rows=BadRows.QUARANTINE, **kw)


# -- reading compressed files -----------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["gz", "bz2", "xz", "zip"])
def test_compressed_csv_reads_like_the_plain_file(tmp_path: Path, ext: str) -> None:
    plain, u = _write(tmp_path, LONG_CSV)
    packed = tmp_path / f"bars.csv.{ext}"
    pd.read_csv(plain, dtype=str).to_csv(packed, index=False)  # pandas compresses by the suffix
    assert packed.read_bytes()[:20] != plain.read_bytes()[:20]
    got = FileProvider(packed, u).daily_bars(["AAA", "BBB"], date(2024, 1, 1), date(2024, 1, 31))
    want = FileProvider(plain, u).daily_bars(["AAA", "BBB"], date(2024, 1, 1), date(2024, 1, 31))
    pd.testing.assert_frame_equal(got, want)


def test_compressed_csv_with_a_repeated_header_is_still_caught(tmp_path: Path) -> None:
    b, u = _write(tmp_path, "", name="bars.csv.gz")
    pd.DataFrame([["AAA", "2024-01-02", 1, 1]], columns=["symbol", "date", "close", "close"]).to_csv(b, index=False)
    with pytest.raises(BadInputError, match=r"bars\.csv\.gz: line 1: column\(s\) \['close'\] appear more than once"):
        FileProvider(b, u)


def test_parquet_through_the_csv_source(tmp_path: Path) -> None:
    plain, u = _write(tmp_path, LONG_CSV)
    pq = tmp_path / "bars.parquet"
    pd.read_csv(plain).to_parquet(pq)
    p = get_provider(params_from_dict({"data": {"source": "csv", "bars_path": str(pq), "universe_path": str(u)}}))
    assert len(p.daily_bars(["AAA", "BBB"], date(2024, 1, 1), date(2024, 1, 31))) == 4


# -- bad rows: stop ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, line, what", [
    ("AAA,2024-01-03,,11.2,10.1,11,1200", 3, "column 'open' is empty"),
    ("AAA,2024-01-03,10.5,11.2,10.1,11.3,1200", 3, "close outside the day's low-high range"),
    ("AAA,2024-01-03,12,11.2,10.1,11,1200", 3, "open outside the day's low-high range"),
    ("AAA,2024-01-03,-1,11.2,10.1,11,1200", 3, "column 'open' has non-positive price(s)"),
    ("AAA,2024-01-03,10.5,11.2,10.1,n/a?,1200", 3, "column 'close' has non-numeric value(s)"),
    ("AAA,2024-01-02,10,11,9.5,10.5,1000", 3, "duplicate (symbol, date) rows"),
])
def test_stop_names_the_file_line_and_field(tmp_path: Path, bad: str, line: int, what: str) -> None:
    rows = LONG_CSV.splitlines()
    rows[2] = bad
    b, u = _write(tmp_path, "\n".join(rows) + "\n")
    with pytest.raises(BadInputError) as e:
        FileProvider(b, u, bad_rows=BadRows.STOP)
    msg = str(e.value)
    assert e.value.exit_code == 2
    assert str(b) in msg and f"line {line}" in msg and what in msg
    assert "data.bad_rows: quarantine" in msg  # the way out is named


def test_stop_is_the_provider_default_and_the_params_default_is_quarantine(tmp_path: Path) -> None:
    b, u = _write(tmp_path, DIRTY_CSV)
    with pytest.raises(BadInputError, match="line 3"):
        FileProvider(b, u)
    assert Params().data.bad_rows == BadRows.QUARANTINE
    with pytest.warns(UserWarning, match="7 bad row"):
        p = get_provider(params_from_dict({"data": {"source": "csv", "bars_path": str(b), "universe_path": str(u)}}))
    assert len(p.quarantined)


# -- bad rows: quarantine -----------------------------------------------------------------------------


def test_quarantine_lists_each_bad_row_with_its_line_and_keeps_the_rest(tmp_path: Path) -> None:
    b, u = _write(tmp_path, DIRTY_CSV)
    with pytest.warns(UserWarning, match=r"7 bad row\(s\) quarantined.*line 3 open: empty"):
        p = FileProvider(b, u, bad_rows=BadRows.QUARANTINE)
    q = p.quarantined
    assert list(q.columns) == QUARANTINE_COLUMNS
    assert set(q["file"]) == {str(b)}
    got = [(r.line, r.symbol, r.date, r.field) for r in q.itertuples()]
    assert got == [
        (3, "AAA", "2024-01-03", "open"),
        (5, "AAA", "2024-01-05", "close"),
        (7, "AAA", "2024-01-08", "date"),
        (8, "BBB", "2024-01-02", "open"),
        (9, "BBB", "2024-01-03", "close"),
        (10, "BBB", "2024-01-04", "high"),
        (10, "BBB", "2024-01-04", "low"),
        (10, "BBB", "2024-01-04", "open"),
        (11, "BBB", "2024-01-05", "high"),
    ]
    why = dict(zip(zip(q["line"], q["field"]), q["problem"]))
    assert why[(3, "open")] == "empty"
    assert why[(5, "close")] == "close 11.6 outside low-high 10.8-11.5"
    assert why[(7, "date")] == "duplicate of line 6"
    assert why[(8, "open")] == "non-positive: 0"
    assert why[(9, "close")] == "not a number: 'abc'"
    assert why[(11, "high")] == "high 19 < low 20"
    bars = p.daily_bars(["AAA", "BBB"], date(2024, 1, 1), date(2024, 1, 31))
    kept = [(s, d.day) for s, d in zip(bars["symbol"], bars["date"])]
    assert kept == [("AAA", 2), ("AAA", 4), ("AAA", 8), ("BBB", 8)]  # line 4 (1 cent over) is rounding, kept
    assert np.isfinite(bars[["open", "high", "low", "close"]]).all().all()


def test_relative_tolerance_for_large_prices_and_a_bad_first_copy(tmp_path: Path) -> None:
    rows = ("symbol,date,open,high,low,close,volume\n"
            "AAA,2024-01-02,100000,100000,99000,100000.05,1\n"  # 5 cents over a 100,000 high: within 1e-6
            "AAA,2024-01-03,,11,10,10.5,1\n"                    # bad first copy …
            "AAA,2024-01-03,10.2,11,10,10.5,1\n")                # … so this good copy is kept, not a duplicate
    b, u = _write(tmp_path, rows)
    p = _quarantine(b, u)
    assert list(p.quarantined["line"]) == [3]
    assert len(p.daily_bars(["AAA"], date(2024, 1, 1), date(2024, 1, 31))) == 2


def test_quarantine_in_a_wide_table_drops_only_the_bad_cell(tmp_path: Path) -> None:
    b, u = _write(tmp_path, "date,AAA,BBB\n2024-01-02,1,2\n2024-01-03,x,2.1\n2024-01-04,1.2,-3\nnot a date,1,1\n")
    p = _quarantine(b, u)
    got = [(r.line, r.symbol, r.field, r.problem) for r in p.quarantined.itertuples()]
    assert got == [(3, "AAA", "close", "not a number: 'x'"), (4, "BBB", "close", "non-positive: -3"),
                   (5, "", "date", "missing or unparseable: 'not a date'")]
    bars = p.daily_bars(["AAA", "BBB"], date(2024, 1, 1), date(2024, 1, 31))
    assert [(s, d.day) for s, d in zip(bars["symbol"], bars["date"])] == [("AAA", 2), ("AAA", 4), ("BBB", 2), ("BBB", 3)]


def test_parquet_quarantine_numbers_rows(tmp_path: Path) -> None:
    df = pd.read_csv(pd.io.common.StringIO(LONG_CSV))
    df.loc[2, "close"] = np.nan
    df.to_parquet(tmp_path / "bars.parquet")
    (tmp_path / "u.csv").write_text(UNIVERSE_CSV)
    p = _quarantine(tmp_path / "bars.parquet", tmp_path / "u.csv", fmt="parquet")
    assert list(p.quarantined["line"]) == [3] and list(p.quarantined["field"]) == ["close"]


def test_quarantine_survives_a_symbols_restriction(tmp_path: Path) -> None:
    b, u = _write(tmp_path, DIRTY_CSV)
    with pytest.warns(UserWarning, match="quarantined"):
        p = get_provider(params_from_dict({"data": {
            "source": "csv", "bars_path": str(b), "universe_path": str(u), "symbols": ["AAA"]}}))
    assert len(p.quarantined) == 9  # the file's list: the rows were dropped from the file, whatever is scanned


def test_relative_data_paths_resolve_against_the_project_root(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "parameters").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "notebooks").mkdir()
    _write(tmp_path / "data", LONG_CSV)
    (tmp_path / "parameters" / "files.yaml").write_text(
        "data:\n  source: csv\n  bars_path: data/bars.csv\n  universe_path: data/universe.csv\n")
    for cwd in (tmp_path, tmp_path / "notebooks"):  # the command line at the root, a notebook in notebooks/
        monkeypatch.chdir(cwd)
        p = get_provider(load_params(tmp_path / "parameters" / "files.yaml"))
        assert p.bars_path == tmp_path / "data" / "bars.csv"


# -- the real file --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(shared_data: Path) -> FileProvider:
    with pytest.warns(UserWarning, match="22 bad row"):
        return FileProvider(shared_data / BARS, shared_data / UNIVERSE, bad_rows=BadRows.QUARANTINE)


@pytest.fixture(scope="module")
def real_raw(shared_data: Path) -> tuple[pd.DataFrame, pd.Series]:
    """The real bars as published (no quarantine: the bad print of LNT is still in) and the sectors."""
    raw = pd.read_csv(shared_data / BARS, parse_dates=["date"])
    sectors = pd.read_csv(shared_data / UNIVERSE).set_index("Symbol")["Sector"]
    return raw, sectors


def test_real_gz_file_stops_at_its_first_empty_cell(shared_data: Path) -> None:
    with pytest.raises(BadInputError) as e:
        FileProvider(shared_data / BARS, shared_data / UNIVERSE, bad_rows=BadRows.STOP)
    msg = str(e.value)
    assert BARS in msg and "column 'open' is empty at line 128833" in msg


def test_real_gz_file_quarantines_its_known_dirt(real: FileProvider, shared_data: Path) -> None:
    q = real.quarantined
    assert q[["file", "line"]].drop_duplicates().shape[0] == 22  # 10 rows with empty cells, 12 impossible bars
    lnt = q[(q["symbol"] == "LNT") & (q["date"] == "2016-05-19")]
    assert list(lnt["field"]) == ["close"] and "17.87 outside low-high 35.085-35.785" in lnt["problem"].item()
    dhr = q[(q["symbol"] == "DHR") & (q["date"] == "2016-01-12")]
    assert sorted(dhr["field"]) == ["high", "low", "open"] and set(dhr["line"]) == {128956}
    raw = pd.read_csv(shared_data / BARS, dtype=str, keep_default_na=False)
    assert raw.iloc[128956 - 2][["symbol", "date", "open"]].tolist() == ["DHR", "2016-01-12", ""]  # the line is the line
    bars = real.daily_bars(list(real.universe()["symbol"]), date(2013, 1, 1), date(2016, 12, 31))
    assert len(bars) == len(raw) - 22 and bars["symbol"].nunique() == 499
    assert ((bars["close"] <= bars["high"] + 0.01) & (bars["close"] >= bars["low"] - 0.01)).all()


KNOWN = {("EBAY", "2015-07-20"), ("BAX", "2015-07-01"), ("NI", "2015-07-02"), ("LNT", "2016-05-19"), ("LNT", "2016-05-20")}


def test_known_spin_offs_and_the_bad_print_are_found_on_the_real_file(real_raw) -> None:
    raw, sectors = real_raw
    jumps = find_jumps(raw, sectors, Params().data.jump_threshold)
    assert list(jumps.columns) == JUMP_COLUMNS
    found = {(s, d.strftime("%Y-%m-%d")) for s, d in zip(jumps["symbol"], jumps["date"])}
    assert KNOWN <= found
    # everything else it flags at the default: other spin-offs/splits (Discovery's C shares, Alcoa, Yum China)
    # and four real moves (a drug result, a chip earnings jump, two energy collapses) — reported, for a human
    assert found - KNOWN == {("DISCA", "2014-08-07"), ("DISCK", "2014-08-07"), ("ARNC", "2016-11-01"),
                             ("YUM", "2016-11-01"), ("VRTX", "2013-04-19"), ("AMD", "2016-04-22"),
                             ("CHK", "2016-02-08"), ("WMB", "2016-02-08")}
    ebay = jumps[jumps["symbol"] == "EBAY"].iloc[0]
    assert ebay["move"] == pytest.approx(-0.569, abs=1e-3) and abs(ebay["sector_move"]) < 0.01
    # real earnings moves of about -25% are not flagged
    for sym, day in (("KORS", "2015-05-27"), ("BIIB", "2015-07-24"), ("RL", "2016-02-04")):
        move = raw[(raw["symbol"] == sym)].set_index("date")["close"].pct_change().loc[day]
        assert -0.26 < move < -0.2 and (sym, day) not in found


def test_on_quarantined_bars_the_bad_print_is_gone_and_the_spin_offs_remain(real: FileProvider) -> None:
    bars = real.daily_bars(list(real.universe()["symbol"]), date(2015, 1, 1), date(2016, 12, 31))
    jumps = find_jumps(bars, real.universe().set_index("symbol")["sector"], 0.35)
    found = {(s, d.strftime("%Y-%m-%d")) for s, d in zip(jumps["symbol"], jumps["date"])}
    assert {("EBAY", "2015-07-20"), ("BAX", "2015-07-01"), ("NI", "2015-07-02")} <= found
    assert not any(s == "LNT" for s, _ in found)  # its bad close was quarantined, so no jump and no bounce


@pytest.mark.parametrize("cut", ["2015-07-01", "2015-07-20", "2016-05-19", "2016-05-20"])
def test_find_jumps_is_causal_on_the_real_file(real_raw, cut: str) -> None:
    raw, sectors = real_raw
    window = raw[(raw["date"] >= "2015-01-01") & (raw["date"] <= "2016-06-30")]
    full = find_jumps(window, sectors, 0.35)
    cut_ts = pd.Timestamp(cut)
    truncated = find_jumps(window[window["date"] <= cut_ts], sectors, 0.35)
    pd.testing.assert_frame_equal(truncated, full[full["date"] <= cut_ts].reset_index(drop=True))
    assert (truncated["date"] == cut_ts).any()  # the cut day itself is decided from data up to it


# -- find_jumps rules on synthetic bars -----------------------------------------------------------------------


def _sector_bars(moves: dict[str, list[float]]) -> pd.DataFrame:
    dates = pd.bdate_range("2024-01-01", periods=len(next(iter(moves.values()))) + 1)
    rows = []
    for sym, r in moves.items():
        close = 100 * np.cumprod([1.0, *[1 + x for x in r]])
        rows += [{"symbol": sym, "date": d, "close": c} for d, c in zip(dates, close)]
    return pd.DataFrame(rows)


def test_a_lone_jump_is_flagged_and_a_sector_wide_move_is_not() -> None:
    flat = [0.0, 0.01, -0.01, 0.0]
    bars = _sector_bars({
        "SPIN": [0.0, -0.5, 0.0, 0.0],     # halves alone: flagged
        "BAD": [0.0, 0.0, -0.5, 1.0],      # a bad print and its bounce: both flagged
        "EARN": [0.0, -0.25, 0.0, 0.0],    # -25%: below the default threshold
        "A": flat, "B": flat, "C": flat,
        "X1": [0.0, 0.0, 0.0, -0.4], "X2": [0.0, 0.0, 0.0, -0.35], "X3": [0.0, 0.0, 0.0, -0.38],  # a sector crash
        "LONE": [0.0, 0.6, 0.0, 0.0],      # the only one of its sector: nothing to compare, flagged
    })
    sectors = pd.Series({"SPIN": "S", "BAD": "S", "EARN": "S", "A": "S", "B": "S", "C": "S",
                         "X1": "E", "X2": "E", "X3": "E", "LONE": "L"})
    j = find_jumps(bars, sectors, 0.35)
    got = [(s, d.day, round(m, 4)) for s, d, m in zip(j["symbol"], j["date"], j["move"])]
    assert got == [("LONE", 3, 0.6), ("SPIN", 3, -0.5), ("BAD", 4, -0.5), ("BAD", 5, 1.0)]
    assert j["sector_move"].isna().tolist() == [True, False, False, False]
    assert "no other symbol of its sector" in j["problem"].iloc[0]
    assert find_jumps(bars, sectors, 0.25)["symbol"].tolist().count("EARN") == 1  # -25% = log 0.288
    with pytest.raises(ValueError):
        find_jumps(bars, sectors, 0.0)


def test_find_jumps_is_causal_at_every_cut_on_a_random_market() -> None:
    rng = np.random.default_rng(5)
    moves = {f"S{i:02d}": list(rng.normal(0, 0.02, 60)) for i in range(24)}
    for k, sym in enumerate(list(moves)[:8]):
        moves[sym][5 + 6 * k] = rng.choice([-0.5, 0.8])
    bars = _sector_bars(moves).sample(frac=1.0, random_state=1)  # order must not matter
    sectors = pd.Series({s: f"G{i % 3}" for i, s in enumerate(moves)})
    full = find_jumps(bars, sectors, 0.35)
    assert len(full) >= 8
    for cut in sorted(bars["date"].unique())[::5]:
        part = find_jumps(bars[bars["date"] <= cut], sectors, 0.35)
        pd.testing.assert_frame_equal(part, full[full["date"] <= cut].reset_index(drop=True))


# -- survivorship ----------------------------------------------------------------------------------------------


def test_survivorship_warning() -> None:
    later = survivorship_warning(date(2018, 2, 8), date(2014, 1, 2))
    assert later and "survivorship bias" in later and "2018-02-08" in later and "2014-01-02" in later
    unknown = survivorship_warning(None, date(2014, 1, 2))
    assert unknown and "unknown" in unknown and "data.universe_as_of" in unknown
    assert survivorship_warning(date(2013, 12, 31), date(2014, 1, 2)) is None
    assert survivorship_warning(date(2014, 1, 2), date(2014, 1, 2)) is None


def test_sp500_parameters_describe_the_real_data(root: Path, shared_data: Path, monkeypatch) -> None:
    p = load_params(root / "parameters" / "sp500.yaml")
    assert p.data.universe_as_of == date(2018, 2, 8) and p.data.bad_rows == BadRows.QUARANTINE
    assert survivorship_warning(p.data.universe_as_of, date(2014, 1, 2)) is not None
    monkeypatch.chdir(root / "notebooks")  # paths resolve against the project root, not the working folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        provider = get_provider(p)
    assert provider.bars_path == (shared_data / BARS).resolve() and len(provider.universe()) == 499
    assert provider.universe().set_index("symbol").loc["AAPL", "sector"] == "Information Technology"


# -- data_quality.csv --------------------------------------------------------------------------------------------


def test_write_data_quality_joins_bad_rows_and_jumps(tmp_path: Path) -> None:
    b, u = _write(tmp_path, DIRTY_CSV)
    p = _quarantine(b, u)
    jumps = find_jumps(_sector_bars({"SPIN": [0.0, -0.5], "A": [0.0, 0.0], "B": [0.0, 0.01]}),
                       pd.Series({"SPIN": "S", "A": "S", "B": "S"}), 0.35)
    path = write_data_quality(tmp_path / "out" / "data_quality.csv", p.quarantined, jumps)
    back = pd.read_csv(path)
    assert list(back.columns) == DATA_QUALITY_COLUMNS
    assert back["kind"].tolist() == ["bad_row"] * 9 + ["jump"]
    assert back["line"].tolist()[:9] == [3, 5, 7, 8, 9, 10, 10, 10, 11] and pd.isna(back["line"].iloc[9])
    assert back.iloc[9][["symbol", "date", "field"]].tolist() == ["SPIN", "2024-01-03", "close"]
    empty = pd.read_csv(write_data_quality(tmp_path / "empty.csv"))
    assert list(empty.columns) == DATA_QUALITY_COLUMNS and empty.empty
    with pytest.raises(ValueError, match="neither a quarantine list"):
        write_data_quality(tmp_path / "x.csv", pd.DataFrame({"a": [1]}))


def _history_csv(tmp_path: Path) -> tuple[Path, Path, date]:
    """Real-looking bars for three symbols (the demo market's, written as a user's file) with two bad rows."""
    from wolfkit.data.demo import DemoMarket

    demo = DemoMarket(seed=3, end=date(2026, 6, 30))
    syms = ["AAPL", "XOM", "JPM"]
    bars = demo.daily_bars(syms, date(2025, 6, 1), date(2026, 6, 30))
    bars = bars.assign(date=bars["date"].dt.strftime("%Y-%m-%d")).astype({"open": str})
    bars.loc[10, "open"] = ""                     # line 12: an empty cell
    bars = pd.concat([bars.iloc[:21], bars.iloc[[20]], bars.iloc[21:]], ignore_index=True)  # line 23: duplicate
    b, u = tmp_path / "bars.csv.gz", tmp_path / "universe.csv"
    bars.to_csv(b, index=False)
    demo.universe().query("symbol in @syms").to_csv(u, index=False)
    return b, u, date(2026, 6, 30)


@pytest.mark.parametrize("policy", ["quarantine", "stop"])
def test_cli_scan_writes_the_data_quality_file_beside_out(tmp_path: Path, capsys, policy: str) -> None:
    from wolfkit.cli import main

    b, u, session = _history_csv(tmp_path)
    params = tmp_path / "p.yaml"
    params.write_text(f"data:\n  source: csv\n  bars_path: {b}\n  universe_path: {u}\n  bad_rows: {policy}\n"
                      "scan:\n  lookback_days: 120\n  min_history: 60\n")
    out = tmp_path / "day" / "opps.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["scan", "--params", str(params), "--date", session.isoformat(), "--out", str(out)])
    said = capsys.readouterr()
    dq = tmp_path / "day" / "opps.data_quality.csv"
    if policy == "stop":
        assert code == 2 and not dq.exists()
        assert "bars.csv.gz" in said.err and "line 12" in said.err and "column 'open' is empty" in said.err
        return
    assert code == 0
    assert "quarantined 2 bad row(s)" in said.out and str(dq) in said.out
    q = pd.read_csv(dq)
    assert list(q.columns) == DATA_QUALITY_COLUMNS
    assert q[["line", "symbol", "field", "kind"]].values.tolist() == [[12, "AAPL", "open", "bad_row"],
                                                                      [23, "AAPL", "date", "bad_row"]]
    assert q["problem"].tolist() == ["empty", "duplicate of line 22"]
    assert len(pd.read_csv(out)) == 3  # the scan went on


def test_premarket_report_says_how_many_rows_were_quarantined(tmp_path: Path, monkeypatch) -> None:
    import IPython.display

    from wolfkit import report
    from wolfkit.scan import run_scan, write_scan

    b, u, session = _history_csv(tmp_path)
    params = params_from_dict({"scan": {"lookback_days": 120, "min_history": 60}})
    result = run_scan(params, session, _quarantine(b, u))
    shown: list = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    report.scan_summary(result)
    text = " ".join(getattr(o, "data", "") if not isinstance(o, dict) else str(o) for o in shown)
    assert "quarantined 2 bad row(s)" in text and "Bad rows left out of the data files" in text
    assert {"name": "quarantined_rows", "value": 2} in [o.get(report.RECORD_MIMETYPE) for o in shown if isinstance(o, dict)]
    names = [p.name for p in write_scan(result, tmp_path / "day" / "opportunities.csv")]  # what premarket exports
    assert names == ["opportunities.csv", "opportunities.excluded.csv", "opportunities.data_quality.csv"]
