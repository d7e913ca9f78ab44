"""Benchmark: HTTP requests per order and wall time of a batch through alpaca-py against the emulator.

`execute_plan` drives `AlpacaBroker` (alpaca-py, one request per call) against the Alpaca-compatible
emulator on 127.0.0.1 with Alpaca's limit of 200 requests in any minute. The plan: N market buys of
distinct symbols, 90% of a $1M cash account, everything fits (a clean run: no 403, no fault).

Time is compressed: the emulator's rate-limit window and the executor's sleeps share a fake clock,
so waiting out the window advances that clock instead of the wall. "wall" is the real time the run
took; "+ waits" adds the seconds the executor waited for the window — the wall time the same run
would take against Alpaca's limit (plus the real round trips, which loopback does not have).

`--before REV` measures the code of git revision REV too (exported with `git archive` into a
temporary folder and run in a subprocess with it first on PYTHONPATH), for a before/after table.

    .venv/bin/python benchmarks/bench_requests.py [--orders 50 150 500] [--before REV]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUITY = 1_000_000.0
PRICE = 50.0


class FakeClock:
    """Monotonic seconds that move only when someone sleeps (shared by executor and emulator)."""

    def __init__(self) -> None:
        self.t = 0.0
        self._lock = threading.Lock()

    def sleep(self, s: float) -> None:
        with self._lock:
            self.t += max(0.0, s)

    def __call__(self) -> float:
        with self._lock:
            return self.t


def once(n: int, folder: Path) -> dict:
    """Execute a clean plan of `n` market buys; what the emulator counted and how long it took."""
    from wolfkit.broker.alpaca import AlpacaBroker
    from wolfkit.broker.emulator import create_app, serve
    from wolfkit.broker.sim import SimBroker
    from wolfkit.calendar import NY
    from wolfkit.config import Params
    from wolfkit.domain import ClientOrderId, Layer, OrderType, Side, Strategy, TimeInForce
    from wolfkit.execute import execute_plan
    from wolfkit.ledger import Ledger
    from wolfkit.orders import Account, OrderPlan, PlannedOrder, Summary

    at = datetime(2026, 1, 20, 9, 30, 5, tzinfo=NY)
    run_id = f"req-{n}"
    qty = int(0.9 * EQUITY / n // PRICE)
    symbols = [f"S{i:03d}" for i in range(n)]
    orders = [PlannedOrder(
        client_order_id=str(ClientOrderId.for_order(run_id, "dir", s, Layer.DIRECTIONAL)), symbol=s, side=Side.BUY,
        qty=qty, type=OrderType.MARKET, limit_price=None, time_in_force=TimeInForce.DAY, layer=Layer.DIRECTIONAL,
        strategy=Strategy.SIMPLE, sector="-", cap_tier="-", score=90.0, weight=0.9 / n, est_price=PRICE,
        est_cost=qty * PRICE, priority=i) for i, s in enumerate(symbols)]
    plan = OrderPlan(
        schema="wolfkit.orders/1", run_id=run_id, as_of=at.date(), created_at=at - timedelta(hours=1),
        account=Account(equity=EQUITY, buying_power=EQUITY, multiplier=1.0), params_digest="bench",
        synthetic_prices=True, orders=orders,
        summary=Summary(positions=n, allocation=0.9, sector_weights={}, cap_weights={}, method="greedy",
                        objective=0.0, leftover_cash=0.1 * EQUITY))
    sim = SimBroker(EQUITY, 1.0, clock=lambda: at)
    for s in symbols:
        sim.market.set(s, PRICE - 0.01, PRICE, at)
    clock = FakeClock()
    srv = serve(create_app(sim, rate_limit_per_minute=200, timer=clock))  # Alpaca's limit, on the fake clock
    os.environ.update(APCA_API_KEY_ID="bench", APCA_API_SECRET_KEY="bench", APCA_API_BASE_URL=srv.url,
                      APCA_API_DATA_URL=srv.url)
    try:
        with Ledger(folder / f"ledger-{n}.sqlite", durable=False) as ledger:
            t0 = time.perf_counter()
            report = execute_plan(plan, AlpacaBroker(timeout=10), ledger, Params(), now=lambda: at,
                                  sleep=clock.sleep, timer=clock)
            wall = time.perf_counter() - t0
        stats = srv.emulator.stats
        return {"orders": n, "requests": stats["requests"], "req_per_order": stats["requests"] / n,
                "429s": stats["429_limit"] + report.rate_limited, "waited_s": clock(), "wall_s": wall,
                "accepted": report.accepted}
    finally:
        srv.shutdown()


def measure(sizes: list[int]) -> list[dict]:
    with tempfile.TemporaryDirectory() as d:
        return [once(n, Path(d)) for n in sizes]


def measure_revision(rev: str, sizes: list[int]) -> list[dict]:
    """`measure` on the code of git revision `rev`, in a subprocess."""
    with tempfile.TemporaryDirectory() as d:
        archive = subprocess.run(["git", "archive", rev, "wolfkit"], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", d], input=archive.stdout, check=True)
        env = {**os.environ, "PYTHONPATH": d}
        out = subprocess.run([sys.executable, __file__, "--json", "--orders", *map(str, sizes)], env=env,
                             capture_output=True, text=True, check=True, cwd=ROOT)
        rows: list[dict] = json.loads(out.stdout.strip().splitlines()[-1])
        return rows


def table(title: str, rows: list[dict]) -> None:
    print(title)
    print(f"{'orders':>7} {'requests':>9} {'req/order':>10} {'429s':>5} {'waited s':>9} {'wall s':>7} "
          f"{'+ waits s':>10} {'accepted':>9}")
    for r in rows:
        print(f"{r['orders']:>7} {r['requests']:>9} {r['req_per_order']:>10.3f} {r['429s']:>5} {r['waited_s']:>9.1f} "
              f"{r['wall_s']:>7.2f} {r['wall_s'] + r['waited_s']:>10.1f} {r['accepted']:>5}/{r['orders']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--orders", type=int, nargs="+", default=[50, 150, 500])
    ap.add_argument("--before", metavar="REV", help="also measure the code of this git revision")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON (used by --before)")
    args = ap.parse_args(argv)
    if args.json:
        print(json.dumps(measure(args.orders)))
        return 0
    import wolfkit

    print(f"execute_plan → AlpacaBroker (alpaca-py) → emulator, 200 requests/min on a fake clock; "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    after = measure(args.orders)
    if args.before:
        table(f"before: {args.before}", measure_revision(args.before, args.orders))
    table(f"after: this tree ({Path(wolfkit.__file__).parent})", after)
    bad = [r for r in after if r["429s"] or r["accepted"] != r["orders"]]
    if bad:
        print("FAIL: a 429 was met or an order was not accepted")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
