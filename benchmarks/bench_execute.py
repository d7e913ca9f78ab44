"""Benchmark: 50 orders through alpaca-py against the emulator — wall time, requests, 429s.

The executor (`execute_plan`) drives `AlpacaBroker` (alpaca-py's TradingClient, one request per
call, timeouts on) against `wolfkit emulator`'s app on 127.0.0.1, whose rate limit is Alpaca's
200 requests/minute. The plan: 50 market buys from the demo market, sized from the previous
session's closes to 95% of a $1M cash account, executed at 09:30:05 on the next session, when asks
have moved (gap). Runs with 0 ms and 20 ms of server latency (a network round trip) so the effect
of the executor's concurrency shows. Must print 0 for 429s: the executor's own limiter keeps
under the broker's limit.

    .venv/bin/python benchmarks/bench_execute.py [--orders 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from wolfkit import calendar
from wolfkit.broker.alpaca import AlpacaBroker
from wolfkit.broker.emulator import Faults, create_app, serve
from wolfkit.broker.sim import SimBroker
from wolfkit.config import Params
from wolfkit.data.demo import DemoMarket
from wolfkit.domain import ClientOrderId, Layer, OrderType, Side, TimeInForce
from wolfkit.execute import execute_plan
from wolfkit.ledger import Ledger
from wolfkit.orders import Account, OrderPlan, PlannedOrder, Summary

EQUITY = 1_000_000.0


def build(n: int, run_id: str) -> tuple[OrderPlan, dict[str, tuple[float, float]], datetime]:
    """A plan of `n` market buys and the quotes at the next open (from the demo market)."""
    market = DemoMarket(seed=7)
    session = calendar.previous_session(calendar.latest_session(market.end))
    prev = calendar.previous_session(session)
    symbols = sorted(market.universe()["symbol"])[:n]
    closes = market.daily_bars(symbols, prev, prev).set_index("symbol")["close"]
    at = calendar.session_open(session) + timedelta(seconds=5)
    q = market.latest_quotes(symbols, at).set_index("symbol")
    weight = 0.95 / n
    orders = [PlannedOrder(
        client_order_id=str(ClientOrderId.for_order(run_id, "dir", s, Layer.DIRECTIONAL)), symbol=s, side=Side.BUY,
        qty=max(1, int(weight * EQUITY // closes[s])), type=OrderType.MARKET, limit_price=None,
        time_in_force=TimeInForce.DAY, layer=Layer.DIRECTIONAL, strategy="simple", sector="-", cap_tier="-",
        score=90.0, weight=weight, est_price=float(closes[s]),
        est_cost=round(max(1, int(weight * EQUITY // closes[s])) * float(closes[s]), 2), priority=i,
    ) for i, s in enumerate(symbols)]
    alloc = sum(o.est_cost for o in orders) / EQUITY
    plan = OrderPlan(
        schema="wolfkit.orders/1", run_id=run_id, as_of=session, created_at=at - timedelta(hours=1),
        account=Account(equity=EQUITY, buying_power=EQUITY, multiplier=1.0), params_digest="bench",
        synthetic_prices=True, orders=orders,
        summary=Summary(positions=n, allocation=alloc, sector_weights={}, cap_weights={}, method="greedy",
                        objective=0.0, leftover_cash=EQUITY * (1 - alloc)),
    )
    return plan, {s: (float(q.loc[s, "bid"]), float(q.loc[s, "ask"])) for s in symbols}, at


def once(n: int, latency_s: float, k: int, tmp: Path) -> dict:
    plan, quotes, at = build(n, f"bench-{k}")
    sim = SimBroker(EQUITY, 1.0, clock=lambda: at, market_buffer=0.03, fill_on_submit=True, seed=k)
    for s, (bid, ask) in quotes.items():
        sim.market.set(s, bid, ask, at)
    srv = serve(create_app(sim, Faults(latency_s=latency_s)))  # Alpaca's 200/min limit, wall clock
    os.environ.update(APCA_API_KEY_ID="bench", APCA_API_SECRET_KEY="bench", APCA_API_BASE_URL=srv.url,
                      APCA_API_DATA_URL=srv.url)
    try:
        with Ledger(tmp / f"ledger-{k}.sqlite", durable=False) as ledger:
            t0 = time.perf_counter()
            report = execute_plan(plan, AlpacaBroker(timeout=10), ledger, Params(), now=lambda: at)
            wall = time.perf_counter() - t0
        stats = srv.emulator.stats
        return {"wall_s": wall, "requests": stats["requests"],
                "429s": stats["429_limit"] + stats["429_injected"] + report.rate_limited,
                "accepted": report.accepted, "deployed_pct": report.deployed_pct,
                "ibp_403": report.insufficient_bp_rejections}
    finally:
        srv.shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"execute_plan → AlpacaBroker (alpaca-py) → emulator on 127.0.0.1; {args.orders} market buys, "
          f"$1M cash account, executor concurrency {Params().execution.max_concurrency}, "
          f"limiter {Params().execution.rate_limit_per_minute}/min vs broker 200/min; median of {args.repeat}")
    print(f"{'latency':>8} {'wall s':>8} {'ms/order':>9} {'requests':>9} {'req/order':>10} {'429s':>5} "
          f"{'accepted':>9} {'deployed':>9} {'403s':>5}")
    failed = False
    with tempfile.TemporaryDirectory() as d:
        k = 0
        for latency in (0.0, 0.020):
            runs = []
            for _ in range(args.repeat):
                runs.append(once(args.orders, latency, k, Path(d)))
                k += 1
            wall = statistics.median(r["wall_s"] for r in runs)
            r = runs[-1]
            n429 = sum(x["429s"] for x in runs)
            print(f"{latency * 1000:>6.0f}ms {wall:>8.3f} {wall / args.orders * 1000:>9.1f} {r['requests']:>9} "
                  f"{r['requests'] / args.orders:>10.2f} {n429:>5} {r['accepted']:>6}/{args.orders:<2} "
                  f"{r['deployed_pct']:>8.1%} {r['ibp_403']:>5}")
            failed |= n429 > 0 or any(x["accepted"] != args.orders for x in runs)
    if failed:
        print("FAIL: a 429 was met or an order was not accepted")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
