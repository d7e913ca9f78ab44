"""Carrying overnight with a rebalancing builder: the pure netting, the orders file built against held positions,
the executor's check that the account still holds them (and the carried exits it cancels, on the simulator), the
backtest trading only the deltas, and the run lock keyed by account."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import OPEN, SESSION, make_plan, planned_order, quoted_sim
from test_orders import opps

from wolfkit.broker.account import AccountKey, account_key, sim_account
from wolfkit.broker.base import OrderRequest, OrderStatus
from wolfkit.broker.gate import BrokerKind
from wolfkit.config import Params
from wolfkit.domain import Layer, OrderType, Side, TimeInForce
from wolfkit.errors import BadInputError
from wolfkit.execute import execute_plan
from wolfkit.ledger import Ledger
from wolfkit.orders import OrderPlan, build_order_plan, read_orders, write_orders
from wolfkit.rebalance import Holding, Holdings, RebalanceAction, rebalance_orders
from wolfkit.runlock import RunLock, RunLocked, lock_path

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 1, 20)
CREATED = datetime(2026, 1, 20, 13, 30, tzinfo=timezone.utc)


# ---- the pure netting ---------------------------------------------------------------------------


def test_rebalance_sells_first_then_buys_only_the_difference():
    deltas = rebalance_orders({"NEW": 10, "UP": 8, "TRIM": 3, "SAME": 5},
                              {"UP": 5, "TRIM": 7, "SAME": 5, "GONE": 4, "BIG": 2},
                              {"GONE": 10.0, "BIG": 100.0, "TRIM": 1.0})
    got = [(d.symbol, d.action, d.side, d.qty) for d in deltas]
    assert got == [
        ("BIG", RebalanceAction.EXIT, Side.SELL, 2),  # exits first, the largest value first ($200 > $40)
        ("GONE", RebalanceAction.EXIT, Side.SELL, 4),
        ("TRIM", RebalanceAction.TRIM, Side.SELL, 4),
        ("NEW", RebalanceAction.BUY, Side.BUY, 10),  # then the buys, in the pack's order
        ("UP", RebalanceAction.TOP_UP, Side.BUY, 3),
    ]  # SAME is at its target: no trade
    assert deltas[2].reason == "trim: held 7, target 3" and deltas[0].reason == "left the pack: sells all 2 held"
    assert rebalance_orders({"A": 4}, {}) == rebalance_orders({"A": 4}, {"B": 0})  # a zero line holds nothing
    assert rebalance_orders({"A": 4}, {"A": 4}) == []


def test_rebalance_refuses_a_short_naming_the_fix():
    with pytest.raises(BadInputError, match=r"acct: short position\(s\) TSLA -3.*Cover them first"):
        rebalance_orders({"TSLA": 5}, {"TSLA": -3}, source="acct")


# ---- the orders file built against held positions -----------------------------------------------


def _build(holdings: Holdings | None, p: Params | None = None):
    return build_order_plan(opps(), p or Params(), 100_000.0, 200_000.0, AS_OF, created_at=CREATED,
                            holdings=holdings)


def test_builder_nets_the_pack_against_holdings_and_records_them(tmp_path):
    flat = _build(None).plan
    pack = {o.symbol: o for o in flat.orders if o.layer == Layer.DIRECTIONAL}
    assert all(o.rebalance is None and o.reason is None for o in flat.orders) and flat.holdings is None
    a, b, c = list(pack)[:3]
    held = Holdings(account="sim:sim@file:///x/sim_broker.json", read_at=CREATED, positions=[
        Holding(symbol=a, qty=pack[a].qty, price=pack[a].est_price),  # at target: no trade
        Holding(symbol=b, qty=pack[b].qty + 7, price=pack[b].est_price),  # trimmed by 7
        Holding(symbol=c, qty=1, price=pack[c].est_price),  # topped up
        Holding(symbol="ZZZ", qty=12, price=9.5),  # left the pack (not even a candidate): sold
    ])
    plan = _build(held).plan
    d = {o.symbol: o for o in plan.orders if o.layer == Layer.DIRECTIONAL}
    assert a not in d
    assert (d[b].side, d[b].qty, d[b].rebalance, d[b].reason) == (Side.SELL, 7, RebalanceAction.TRIM,
                                                                  f"trim: held {pack[b].qty + 7}, target {pack[b].qty}")
    assert (d["ZZZ"].side, d["ZZZ"].qty, d["ZZZ"].rebalance, d["ZZZ"].sector) == (Side.SELL, 12, RebalanceAction.EXIT,
                                                                                  "unknown")
    assert d["ZZZ"].take_profit is None and d["ZZZ"].est_cost == pytest.approx(12 * 9.5)
    assert (d[c].side, d[c].qty, d[c].rebalance) == (Side.BUY, pack[c].qty - 1, RebalanceAction.TOP_UP)
    assert d[c].take_profit == pack[c].take_profit  # a top-up keeps the scan's bracket (for its own shares)
    for s, o in pack.items():  # every other name bought as before
        if s not in (a, b, c):
            assert (d[s].qty, d[s].rebalance) == (o.qty, RebalanceAction.BUY)
    sells = [o.priority for o in plan.orders if o.side == Side.SELL and o.layer == Layer.DIRECTIONAL]
    buys = [o.priority for o in plan.orders if o.side == Side.BUY and o.layer == Layer.DIRECTIONAL]
    assert max(sells) < min(buys)  # sells free the buying power first
    held_symbols = {h.symbol for h in held.positions}
    assert not {o.symbol for o in plan.orders if o.layer == Layer.MAXDIFF} & held_symbols
    assert plan.run_id != flat.run_id  # other holdings: another plan, other client ids
    assert any("sized against 4 held position(s)" in n and "1 exit(s), 1 trim(s), 1 top-up(s)" in n
               for n in plan.summary.notes)
    again = read_orders(write_orders(plan, tmp_path / "orders.json"))
    assert again == plan and again.holdings is not None and again.holdings.qty()[b] == pack[b].qty + 7


def test_orders_file_refuses_bad_holdings(tmp_path):
    plan = _build(Holdings(account="sim:sim@x", read_at=CREATED, positions=[Holding(symbol="AAA", qty=1, price=2.0)]))
    raw = plan.plan.model_dump(mode="json", by_alias=True)
    raw["holdings"]["positions"].append({"symbol": "AAA", "qty": 2, "price": 2.0})
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(BadInputError, match=r"holdings: positions\[1\]: AAA appears twice"):
        read_orders(path)


# ---- the executor: a plan built against H executes only while the account holds H ---------------


def _params() -> Params:
    return Params.model_validate({"execution": {"lock_wait_seconds": 0}})


def _execute(plan: OrderPlan, broker, ledger):
    return execute_plan(plan, broker, ledger, _params(), now=lambda: OPEN, sleep=lambda s: None)


def _carried_sim():
    """A simulated account holding 20 NVDA and 50 AMD, each with its bracket's exits working (bought yesterday)."""
    yesterday = OPEN - timedelta(days=3)  # the Friday before the session
    b = quoted_sim({"NVDA": 450.0, "AMD": 160.0, "PLTR": 25.0}, fill_on_submit=True, now=yesterday)
    for sym, qty, px in (("NVDA", 20, 450.0), ("AMD", 50, 160.0)):
        b.submit(OrderRequest(sym, qty, Side.BUY, OrderType.MARKET, TimeInForce.DAY, f"wk-yesterday-{sym}",
                              take_profit=round(px * 1.2, 2), stop_loss=round(px * 0.8, 2)))
    b.clock = lambda: OPEN
    assert {p.symbol: p.qty for p in b.positions()} == {"NVDA": 20, "AMD": 50}
    return b


def _ledger(broker) -> Ledger:
    """A ledger that knows yesterday's run on the account (whose bracket exits are still working)."""
    ledger = Ledger(":memory:")
    ledger.for_account(account_key(broker)).start_run("yesterday", as_of=date(2024, 5, 31), broker="sim")
    return ledger


def _rebalance_plan(holdings: Holdings | None) -> OrderPlan:
    """Today: NVDA trimmed to 12, AMD left the pack, PLTR bought new."""
    orders = [
        planned_order("AMD", 50, 160.0, run_id="today", side=Side.SELL, priority=0),
        planned_order("NVDA", 8, 450.0, run_id="today", side=Side.SELL, priority=1),
        planned_order("PLTR", 100, 25.0, run_id="today", priority=2, take_profit=30.0, stop_loss=22.0),
    ]
    plan = make_plan(run_id="today", pack=(), extra=orders)
    return plan.model_copy(update={"holdings": holdings})


def _holdings(**qty: int) -> Holdings:
    return Holdings(account="sim:sim@in-process", read_at=CREATED,
                    positions=[Holding(symbol=s, qty=q, price=100.0) for s, q in qty.items()])


def test_plan_built_against_holdings_executes_and_replaces_the_carried_exits():
    b = _carried_sim()
    ledger = _ledger(b)
    report = _execute(_rebalance_plan(_holdings(NVDA=20, AMD=50)), b, ledger)
    assert report.unresolved == 0 and report.accepted == 3, [(o.symbol, o.state, o.reason) for o in report.orders]
    assert {p.symbol: p.qty for p in b.positions()} == {"NVDA": 12, "PLTR": 100}
    assert any("cancelled 4 open exit order(s) of carried positions" in n for n in report.notes)
    legs = {o.client_order_id: o.status for o in (leg for o in b.orders() for leg in o.legs)}
    assert all(legs[f"wk-yesterday-{s}-{k}"] == OrderStatus.CANCELED for s in ("NVDA", "AMD") for k in ("tp", "sl"))
    working = {(o.symbol, o.side) for o in b.open_orders()}
    assert working == {("PLTR", Side.SELL)}  # the new name's bracket; the trimmed NVDA's exits are gone
    assert _execute(_rebalance_plan(_holdings(NVDA=20, AMD=50)), b, ledger).accepted == 3  # a re-run: nothing twice
    assert {p.symbol: p.qty for p in b.positions()} == {"NVDA": 12, "PLTR": 100}


def test_kept_names_keep_their_carried_exits_even_when_the_ledger_is_lost():
    b = _carried_sim()
    plan = make_plan(run_id="keep", pack=(), extra=[planned_order("PLTR", 10, 25.0, run_id="keep")])
    _execute(plan.model_copy(update={"holdings": _holdings(NVDA=20, AMD=50)}), b, Ledger(":memory:"))
    assert {(o.symbol, o.side) for o in b.open_orders()} == {("NVDA", Side.SELL), ("AMD", Side.SELL)}


@pytest.mark.parametrize("built, says", [
    (None, "holds shares no wolfkit plan of session 2024-06-03 bought (AMD +50, NVDA +20)"),
    (_holdings(NVDA=20), "AMD held +50, built against +0"),
    (_holdings(NVDA=20, AMD=50, PLTR=5), "PLTR held +0, built against +5"),
])
def test_plan_whose_holdings_differ_from_the_account_exits_2_and_sends_nothing(built, says):
    b = _carried_sim()
    before = len(b.orders())
    with pytest.raises(BadInputError) as e:
        _execute(_rebalance_plan(built), b, _ledger(b))
    assert says in str(e.value) and "nothing was sent" in str(e.value) and "--broker" in str(e.value)
    assert len(b.orders()) == before


# ---- the backtest trades only the deltas --------------------------------------------------------


def test_backtest_carry_nets_and_pays_fees_on_the_deltas_only(tmp_path):
    """Carried overnight on the demo market: at each open a held name trades only its delta (never sold and
    bought back the same morning), and some names are kept across days without a fill."""
    from wolfkit.backtest import run_backtest
    from wolfkit.config import load_params

    p = load_params(ROOT / "parameters/demo.yaml").with_changes(
        {"intraday": {"close_directional_eod": False}, "maxdiff": {"enabled": False},
         "portfolio": {"sector_cap": 0.25}})
    r = run_backtest(p, date(2026, 11, 19), date(2026, 11, 30), tmp_path / "out", progress=False, report=False)
    f = r.fills[r.fills["layer"] == "directional"].copy()
    f["date"] = pd.to_datetime(f["date"]).dt.date
    at_open = f[f["reason"] == "open"].groupby(["date", "symbol"])["side"].nunique()
    assert (at_open == 1).all(), at_open[at_open > 1]  # no round trip at any open
    f["signed"] = np.where(f["side"] == "buy", f["qty"], -f["qty"])
    days = sorted(f["date"].unique())
    position: dict[str, int] = {}
    kept = 0
    for d in days:
        today = f[f["date"] == d]
        opens = today[today["reason"] == "open"]
        for s, q in position.items():
            traded = opens.loc[opens["symbol"] == s, "signed"].sum()
            if q > 0 and q + traded > 0:
                kept += 1  # held overnight and still held after the open: netted, not sold and rebought
        for s, q in today.groupby("symbol")["signed"].sum().items():
            position[s] = position.get(s, 0) + int(q)
    assert kept > 0
    assert all(q >= 0 for q in position.values())  # long-only: a delta never oversells
    assert r.fills["fee"].ge(0).all()


# ---- the run lock keyed by account --------------------------------------------------------------


def test_run_lock_is_per_account_not_per_broker_kind(tmp_path):
    ledger = tmp_path / "ledger.sqlite"
    sim_a, sim_b = sim_account(tmp_path / "a" / "sim_broker.json"), sim_account(tmp_path / "b" / "sim_broker.json")
    paper = AccountKey(kind=BrokerKind.PAPER, account_id="PA1", base_url="http://127.0.0.1:8765")
    assert len({lock_path(ledger, k, SESSION) for k in (sim_a, sim_b, paper)}) == 3
    with RunLock(ledger, sim_a, SESSION, wait_s=0):
        with RunLock(ledger, paper, SESSION, wait_s=0), RunLock(ledger, sim_b, SESSION, wait_s=0):
            pass  # other accounts never wait
    hold = ("import sys, time; from pathlib import Path; from wolfkit.runlock import RunLock; "
            "from wolfkit.broker.account import sim_account; "
            "lock = RunLock(sys.argv[1], sim_account(Path(sys.argv[2])), '2024-06-03', 0); lock.acquire(); "
            "print('held', flush=True); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(ledger), str(tmp_path / "a" / "sim_broker.json")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match=f"account {sim_a}"), RunLock(ledger, sim_a, SESSION, wait_s=0.2):
            pass  # the same account, another process: always waits, then exit 2 naming the holder
        with RunLock(ledger, paper, SESSION, wait_s=0):
            pass
    finally:
        holder.kill()
        holder.wait()


# ---- the intraday engine on a plan built against held positions ---------------------------------


def test_intraday_engine_sells_a_trim_without_room_exits_or_a_close_buy_back():
    """A trim is a sale of shares held before the plan: the engine sends it, counts no exposure for it and
    never 'flattens' it at the close by buying back (which a short entry would get)."""
    from test_intraday import EQUITY, SESSION, bars, order, params, plan

    from wolfkit.broker.sim import SimBroker
    from wolfkit.intraday import IntradayEngine
    from wolfkit.replay import drive

    trim = order("MSFT", 20, 200.0, side=Side.SELL).model_copy(
        update={"rebalance": RebalanceAction.TRIM, "reason": "trim: held 50, target 30"})
    op = plan([trim, order("AAPL", 10, 100.0)], [])
    b = bars({"MSFT": 200.0, "AAPL": 100.0})
    broker = SimBroker(EQUITY, 2.0)
    first_bar = (b.symbols, b.high[0], b.low[0], b.close[0], b.times[0].to_pydatetime())
    broker.on_bar(*first_bar)
    broker.submit(OrderRequest("MSFT", 50, Side.BUY, OrderType.MARKET, TimeInForce.DAY, "held-yesterday"))
    broker.on_bar(*first_bar)  # held before the plan
    assert {p.symbol: p.qty for p in broker.positions()} == {"MSFT": 50}
    eng = IntradayEngine.start(params(), op, broker, equity=EQUITY, session=SESSION)  # flattens at the close
    msft = next(d for d in eng.state.directional if d.symbol == "MSFT")
    assert msft.reduces and eng.exposure().directional == pytest.approx(10 * 100.0)
    drive(eng, broker, b)
    assert not msft.exits and msft.entry.filled_qty == 20
    assert {p.symbol: p.qty for p in broker.positions()} == {"MSFT": 30}  # AAPL flattened; the trim not bought back
