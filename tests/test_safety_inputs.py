"""Money safety at the inputs (issue 10, items 1, 6, 11): the live URL gate, one symbol normaliser at
every boundary, and bad input of every kind ending in exit 2 (or 3) that names the field — never a
traceback, never a silently wrong order."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import make_plan

from wolfkit.broker.alpaca import AlpacaBroker
from wolfkit.broker.gate import (
    LIVE_URL,
    PAPER_URL,
    BrokerKind,
    Endpoint,
    broker_kind_for,
    classify,
    trading_url,
)
from wolfkit.calendar import today_ny
from wolfkit.cli import main
from wolfkit.config import Params, load_params, params_from_dict
from wolfkit.data.files import read_universe
from wolfkit.errors import BadInputError
from wolfkit.opportunities import validate_opportunities
from wolfkit.orders import read_orders, write_orders
from wolfkit.symbols import normalize_symbol

ROOT = Path(__file__).resolve().parents[1]
KEY, SECRET = "canary-key-id-7f3a", "canary-secret-9b2c"
ARBITRARY = "https://trading.example.com"


# ---- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("APCA_API_KEY_ID", KEY)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    monkeypatch.delenv("APCA_API_BASE_URL", raising=False)


@pytest.fixture
def day_plan(tmp_path, monkeypatch) -> Path:
    """Today's orders file in a scratch working directory (relative ledger paths land there)."""
    monkeypatch.chdir(tmp_path)
    return write_orders(make_plan(as_of=today_ny()), tmp_path / "orders.json")


def params_file(tmp_path: Path, broker: str) -> Path:
    p = tmp_path / f"{broker}.yaml"
    p.write_text(f"extends: {ROOT / 'parameters/default.yaml'}\nexecution:\n  broker: {broker}\n"
                 f"  ledger_path: {tmp_path / 'ledger.sqlite'}\n")
    return p


def opportunities(n: int = 40) -> pd.DataFrame:
    """A synthetic but well-formed opportunities table: 6 sectors, every cap tier, prices $20-$400."""
    rng = np.random.default_rng(3)
    sectors = ["Tech", "Health", "Energy", "Finance", "Industrials", "Utilities"]
    caps = [500e9, 50e9, 5e9, 1e9, 100e6]
    return pd.DataFrame({
        "symbol": [f"S{i:02d}" for i in range(n)],
        "sector": [sectors[i % len(sectors)] for i in range(n)],
        "market_cap": [caps[i % len(caps)] for i in range(n)],
        "price": np.round(rng.uniform(20, 400, n), 2),
        "score": np.round(np.linspace(99, 71, n), 2),
    })


# ---- 1. the live URL gate -----------------------------------------------------------------------


@pytest.mark.parametrize("url,kind", [
    (PAPER_URL, Endpoint.PAPER), (PAPER_URL + "/v2/", Endpoint.PAPER), ("http://127.0.0.1:8765", Endpoint.LOOPBACK),
    ("http://127.9.9.9", Endpoint.LOOPBACK), ("http://localhost:1234/", Endpoint.LOOPBACK),
    ("http://[::1]:8765", Endpoint.LOOPBACK), (LIVE_URL, Endpoint.LIVE), (ARBITRARY, Endpoint.LIVE),
    ("http://10.0.0.5:8765", Endpoint.LIVE), ("https://paper-api.alpaca.markets.evil.com", Endpoint.LIVE),
    ("http://localhost.evil.com", Endpoint.LIVE), ("ftp://127.0.0.1", Endpoint.LIVE), ("not a url", Endpoint.LIVE),
])
def test_classify_urls(url, kind):
    assert classify(url) is kind


def test_trading_url_paper_refuses_live_urls_and_names_both_switches(monkeypatch):
    for url in (LIVE_URL, LIVE_URL + "/v2", ARBITRARY):
        monkeypatch.setenv("APCA_API_BASE_URL", url)
        with pytest.raises(BadInputError) as e:
            trading_url(live=False)
        msg = str(e.value)
        assert url.removesuffix("/v2") in msg and "--live" in msg and "execution.broker: live" in msg


def test_trading_url_defaults_and_loopback(monkeypatch):
    monkeypatch.delenv("APCA_API_BASE_URL", raising=False)
    assert trading_url(live=False) == PAPER_URL and trading_url(live=True) == LIVE_URL
    monkeypatch.setenv("APCA_API_BASE_URL", "http://127.0.0.1:8765/v2/")
    assert trading_url(live=False) == "http://127.0.0.1:8765"
    monkeypatch.setenv("APCA_API_BASE_URL", LIVE_URL + "/")
    assert trading_url(live=True) == LIVE_URL


@pytest.mark.parametrize("url", [PAPER_URL, "http://127.0.0.1:8765", ARBITRARY])
def test_live_switches_send_to_the_live_url_only(monkeypatch, url):
    monkeypatch.setenv("APCA_API_BASE_URL", url)
    with pytest.raises(BadInputError, match="live orders go to https://api.alpaca.markets only"):
        trading_url(live=True)


def test_url_credentials_never_shown(monkeypatch):
    monkeypatch.setenv("APCA_API_BASE_URL", f"https://{KEY}:{SECRET}@api.alpaca.markets")
    with pytest.raises(BadInputError) as e:
        trading_url(live=False)
    assert SECRET not in str(e.value) and KEY not in str(e.value) and "api.alpaca.markets" in str(e.value)


def test_alpaca_broker_is_gated_at_construction(keys, monkeypatch, requests_mock):
    """Every path that builds an Alpaca trading client goes through the gate: no request leaves."""
    monkeypatch.setenv("APCA_API_BASE_URL", LIVE_URL)
    with pytest.raises(BadInputError) as e:
        AlpacaBroker(timeout=5)
    assert LIVE_URL in str(e.value) and SECRET not in str(e.value)
    with pytest.raises(BadInputError):
        AlpacaBroker(timeout=5, base_url=ARBITRARY)
    assert requests_mock.call_count == 0
    monkeypatch.setenv("APCA_API_BASE_URL", "http://127.0.0.1:8765")  # the emulator, on paper: allowed
    assert AlpacaBroker(timeout=5).trading._base_url == "http://127.0.0.1:8765"
    monkeypatch.delenv("APCA_API_BASE_URL")
    assert AlpacaBroker(timeout=5).trading._base_url == PAPER_URL
    assert AlpacaBroker(paper=False, timeout=5).trading._base_url == LIVE_URL
    assert requests_mock.call_count == 0


def test_broker_kind_for_gates_switches_and_url(monkeypatch):
    paper, live = (Params().with_changes({"execution": {"broker": b}}) for b in ("paper", "live"))
    monkeypatch.setenv("APCA_API_BASE_URL", LIVE_URL)
    with pytest.raises(BadInputError, match="api.alpaca.markets"):
        broker_kind_for(paper)
    assert broker_kind_for(Params()) is BrokerKind.SIM  # the simulator sends nothing anywhere
    assert broker_kind_for(live, None, True) is BrokerKind.LIVE
    with pytest.raises(BadInputError, match="BOTH switches"):
        broker_kind_for(live, None, False)
    monkeypatch.setenv("APCA_API_BASE_URL", "http://127.0.0.1:8765")
    assert broker_kind_for(paper) is BrokerKind.PAPER
    with pytest.raises(BadInputError, match="not Alpaca's live trading URL"):
        broker_kind_for(live, None, True)


@pytest.mark.parametrize("url", [LIVE_URL, ARBITRARY])
@pytest.mark.parametrize("command", ["execute", "intraday"])
@pytest.mark.parametrize("orders_exist", [True, False])
def test_cli_paper_params_with_a_live_url_exit_2_before_anything(
        keys, day_plan, monkeypatch, capsys, requests_mock, url, command, orders_exist):
    """`--params parameters/paper.yaml` with Alpaca's live URL (their standard setup) or any other host:
    exit 2 naming the URL and both switches, before any other check (even a missing orders file) and
    with zero HTTP requests."""
    monkeypatch.setenv("APCA_API_BASE_URL", url)
    orders = day_plan if orders_exist else day_plan.with_name("missing.json")
    code = main([command, "--orders", str(orders), "--params", str(ROOT / "parameters/paper.yaml")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    assert url in err and "--live" in err and "execution.broker: live" in err
    assert KEY not in err and SECRET not in err
    assert requests_mock.call_count == 0
    assert not (day_plan.parent / "outputs").exists()  # no ledger was opened


def test_cli_live_switches_with_a_paper_url_exit_2(keys, day_plan, tmp_path, monkeypatch, capsys, requests_mock):
    monkeypatch.setenv("APCA_API_BASE_URL", PAPER_URL)
    code = main(["execute", "--orders", str(day_plan), "--params", str(params_file(tmp_path, "live")), "--live"])
    assert code == 2 and "live orders go to https://api.alpaca.markets only" in " ".join(capsys.readouterr().err.split())
    assert requests_mock.call_count == 0


def test_cli_status_with_a_live_url_needs_both_switches(keys, tmp_path, monkeypatch, capsys, requests_mock):
    monkeypatch.setenv("APCA_API_BASE_URL", LIVE_URL)
    code = main(["status", "--ledger", str(tmp_path / "none.sqlite"), "--params", str(params_file(tmp_path, "paper"))])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and LIVE_URL in err and "--live" in err
    assert requests_mock.call_count == 0


# ---- 6. symbols ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw,want", [("aapl", "AAPL"), (" RGTI ", "RGTI"), ("brk.b", "BRK.B"), ("BF-B", "BF-B"),
                                      ("ABCDEFGHIJKL", "ABCDEFGHIJKL"), ("9988", "9988")])
def test_normalize_symbol(raw, want):
    assert normalize_symbol(raw) == want


@pytest.mark.parametrize("raw", ["../../etc/passwd", "AAPL;rm -rf ~", "[bold]", "", "  ", "ABCDEFGHIJKLM", "..",
                                 "-X", "AA PL", "ÄPPL", "A/B", "[/]"])
def test_normalize_symbol_refuses(raw):
    with pytest.raises(ValueError, match="not a ticker"):
        normalize_symbol(raw)


def test_case_variant_duplicate_in_opportunities_is_reported_by_row():
    df = opportunities(12)
    df.loc[3, "symbol"], df.loc[7, "symbol"] = "rgti", "RGTI"
    with pytest.raises(BadInputError) as e:
        validate_opportunities(df, Params(), "opp.csv")
    assert "row 9: symbol: duplicate of RGTI on row 5" in str(e.value)
    p = Params().with_changes({"portfolio": {"quarantine_bad_rows": True}})
    ok = validate_opportunities(df, p, "opp.csv")
    assert list(ok.valid["symbol"]).count("RGTI") == 1 and "rgti" not in set(ok.valid["symbol"])
    assert list(ok.quarantined["row"]) == [9]


def test_hostile_symbols_in_opportunities_name_their_rows():
    df = opportunities(12)
    df.loc[0, "symbol"], df.loc[4, "symbol"], df.loc[5, "symbol"] = "../../etc/passwd", "AAPL;rm -rf ~", "[bold]"
    with pytest.raises(BadInputError) as e:
        validate_opportunities(df, Params(), "opp.csv")
    msg = str(e.value)
    assert "row 2: symbol: '../../etc/passwd' is not a ticker" in msg
    assert "row 6: symbol: 'AAPL;rm -rf ~' is not a ticker" in msg and "row 7: symbol: '[bold]'" in msg


def test_orders_file_symbols_are_normalised_and_checked(tmp_path):
    doc = json.loads(make_plan(as_of=date(2026, 1, 20)).to_json())
    doc["orders"][0]["symbol"] = " aapl "
    (tmp_path / "o.json").write_text(json.dumps(doc))
    assert read_orders(tmp_path / "o.json").orders[0].symbol == "AAPL"
    doc["orders"][1]["symbol"] = "aapl"  # now the same symbol and side twice in one layer
    (tmp_path / "o.json").write_text(json.dumps(doc))
    with pytest.raises(BadInputError, match="AAPL buy appears twice"):
        read_orders(tmp_path / "o.json")
    doc["orders"][1]["symbol"] = "../../etc/passwd"
    (tmp_path / "o.json").write_text(json.dumps(doc))
    with pytest.raises(BadInputError, match=r"orders\.1\.symbol: '\.\./\.\./etc/passwd' is not a ticker"):
        read_orders(tmp_path / "o.json")


def test_universe_file_and_params_symbols(tmp_path):
    u = tmp_path / "universe.csv"
    u.write_text("symbol,sector,market_cap\nbrk.b,Finance,8e11\nAAPL;rm -rf ~,Tech,3e12\n")
    with pytest.raises(BadInputError, match=r"line 3 \('AAPL;rm -rf ~'\)"):
        read_universe(u)
    u.write_text("symbol,sector,market_cap\nbrk.b,Finance,8e11\n")
    assert list(read_universe(u)[0]["symbol"]) == ["BRK.B"]
    assert params_from_dict({"data": {"symbols": ["aapl", " msft"]}}).data.symbols == ["AAPL", "MSFT"]
    with pytest.raises(BadInputError, match=r"data\.symbols\.1 .*not a ticker"):
        params_from_dict({"data": {"symbols": ["aapl", "[bold]"]}})


# ---- 11. bad input: exit 2 naming the field -----------------------------------------------------


def check(tmp_path: Path, capsys, text: str | bytes, *needles: str) -> str:
    f = tmp_path / "p.yaml"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert main(["params", "check", str(f)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err and str(f) in err
    for n in needles:
        assert n in err, (n, err)
    return err


def test_extends_must_be_a_file_name(tmp_path, capsys):
    check(tmp_path, capsys, "extends: [default.yaml]\n", "extends (given ['default.yaml'])", "must be the name")
    check(tmp_path, capsys, "extends: 7\n", "extends (given 7)")


def test_params_file_not_utf8(tmp_path, capsys):
    check(tmp_path, capsys, b"name: caf\xe9\n", "byte 9 is not UTF-8")


@pytest.mark.parametrize("text", ["a:\n" + "".join("  " * i + "b:\n" for i in range(1, 3000)),
                                  "a: " + "[" * 5000 + "]" * 5000 + "\n"])
def test_yaml_nested_thousands_deep(tmp_path, capsys, text):
    check(tmp_path, capsys, text, "nested deeper than")


def test_duplicate_yaml_keys_name_the_key_and_line(tmp_path, capsys):
    check(tmp_path, capsys, "execution:\n  broker: paper\nexecution:\n  broker: live\n",
          "line 3", "duplicate key 'execution' (first given on line 1)")
    check(tmp_path, capsys, "execution:\n  broker: paper\n  max_attempts: 3\n  broker: live\n",
          "line 4", "duplicate key 'broker' (first given on line 2)")


@pytest.mark.parametrize("path,value", [
    ("maxdiff.min_avg_return", ".nan"), ("scan.signals.momentum", ".inf"), ("intraday.poll_seconds", ".nan"),
    ("exits.take_profit_atr", ".inf"), ("exits.stop_loss_atr", "-.inf"), ("execution.market_buffer", ".nan"),
    ("portfolio.sector_caps.Tech", ".nan"), ("portfolio.market_cap.thresholds.mega", ".inf"),
])
def test_nan_and_inf_params_are_refused(tmp_path, capsys, path, value):
    *head, leaf = path.split(".")
    text = "".join("  " * i + f"{k}:\n" for i, k in enumerate(head)) + "  " * len(head) + f"{leaf}: {value}\n"
    check(tmp_path, capsys, text, path, "finite number")


@pytest.mark.parametrize("qty,needle", [(1e20, "orders.0.qty"), ("7", "orders.0.qty"), (True, "orders.0.qty"),
                                        (7.0, "orders.0.qty"), (10_000_001, "less than or equal to 10000000")])
def test_orders_qty_is_a_strict_bounded_integer(tmp_path, qty, needle):
    doc = json.loads(make_plan(as_of=date(2026, 1, 20)).to_json())
    doc["orders"][0]["qty"] = qty
    f = tmp_path / "o.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(BadInputError, match=needle.replace(".", r"\.")):
        read_orders(f)


def test_cli_execute_refuses_qty_1e20(tmp_path, capsys, day_plan):
    doc = json.loads(day_plan.read_text())
    doc["orders"][1]["qty"] = 1e20
    day_plan.write_text(json.dumps(doc))
    assert main(["execute", "--orders", str(day_plan), "--params", str(params_file(tmp_path, "sim"))]) == 2
    assert "orders.1.qty" in capsys.readouterr().err
    assert not (tmp_path / "ledger.sqlite").exists()


def test_client_id_equal_to_another_plus_r1_is_refused(tmp_path):
    doc = json.loads(make_plan(as_of=date(2026, 1, 20)).to_json())
    doc["orders"][2]["client_order_id"] = doc["orders"][0]["client_order_id"] + "-r1"
    f = tmp_path / "o.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(BadInputError, match=r"orders\[2\]: client_order_id .* is orders\[0\]'s id plus -r1"):
        read_orders(f)


def test_orders_file_not_utf8(tmp_path):
    f = tmp_path / "o.json"
    f.write_bytes(b'{"schema": "caf\xe9"}')
    with pytest.raises(BadInputError, match="not UTF-8"):
        read_orders(f)
    f.write_text('{"orders": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(BadInputError, match="nested too deeply"):
        read_orders(f)


@pytest.fixture
def opp_csv(tmp_path) -> Path:
    f = tmp_path / "opp.csv"
    opportunities().to_csv(f, index=False)
    return f


def build(opp: Path, out: Path, equity: str = "100000", day: str = "2024-06-07") -> list[str]:
    return ["build", "--opportunities", str(opp), "--params", str(ROOT / "parameters/default.yaml"),
            "--equity", equity, "--date", day, "--out", str(out)]


def test_build_writes_a_plan_on_a_session(opp_csv, tmp_path, capsys):
    assert main(build(opp_csv, tmp_path / "orders.json")) == 0
    assert read_orders(tmp_path / "orders.json").summary.positions >= 10


def test_build_out_pointing_at_a_folder(opp_csv, tmp_path, capsys):
    assert main(build(opp_csv, tmp_path)) == 2
    assert "is a folder; pass a file name" in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("day,needles", [
    ("2024-06-08", ["Saturday", "previous session is 2024-06-07", "next is 2024-06-10"]),
    ("2024-12-25", ["NYSE holiday", "2024-12-24", "2024-12-26"]),
    ("1900-01-02", ["outside the market calendar's range 2000-01-03"]),
])
def test_build_date_must_be_a_session(opp_csv, tmp_path, capsys, day, needles):
    assert main(build(opp_csv, tmp_path / "o.json", day=day)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert all(n in err for n in needles), err
    assert not (tmp_path / "o.json").exists()


def test_build_equity_too_small_for_min_positions_is_infeasible(opp_csv, tmp_path, capsys):
    assert main(build(opp_csv, tmp_path / "o.json", equity="50")) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "fewer than portfolio.min_positions 10" in err and "share" in err and "Raise --equity" in err
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("name", ["[bold]params.yaml", "a[/]b.yaml", "[red]x[/red].yaml"])
def test_markup_in_paths_prints_literally(tmp_path, capsys, name):
    missing = tmp_path / name
    assert main(["params", "check", str(missing)]) == 2  # the error path: no MarkupError, nothing stripped
    assert str(missing) in " ".join(capsys.readouterr().err.split())
    ok = tmp_path / "ok[bold]" / name  # `a[/]b.yaml` is b.yaml in a folder `a[`: the `[/]` spans the separator
    ok.parent.mkdir(parents=True)
    ok.write_text(f"extends: {ROOT / 'parameters/default.yaml'}\n")
    assert main(["params", "check", str(ok)]) == 0
    assert f"{ok}: valid" in " ".join(capsys.readouterr().out.split())


def test_markup_in_sector_and_out_path_print_literally(tmp_path, capsys):
    df = opportunities()
    df["sector"] = df["sector"].str.replace("Tech", "[bold]Tech[/]")
    opp = tmp_path / "opp.csv"
    df.to_csv(opp, index=False)
    out = tmp_path / "[bold]out" / "orders.json"
    assert main(build(opp, out)) == 0
    printed = capsys.readouterr().out
    assert "[bold]Tech[/]" in printed and "[bold]out" in printed
    assert load_params(ROOT / "parameters/default.yaml").portfolio.min_positions == 10
