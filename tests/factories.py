"""Shared test data: a $100k account, 12 market buys sized from yesterday's closes,
and an open that gaps up 0–8% (shared by the emulator and fault-injection tests)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np

from wolfkit.domain import ClientOrderId, Layer, OrderType, Side, TimeInForce
from wolfkit.orders import Account, OrderPlan, PlannedOrder, Summary

NY = ZoneInfo("America/New_York")
SESSION = date(2024, 6, 3)  # a Monday
OPEN = datetime(2024, 6, 3, 9, 30, 5, tzinfo=NY)

# seed 003's pack: symbol, sector, weight, yesterday's close (USD)
PACK = [
    ("NVDA", "AI/Semiconductors", 0.105, 1096.33), ("AMD", "AI/Semiconductors", 0.090, 166.90),
    ("PLTR", "AI/Software", 0.120, 21.77), ("IONQ", "Quantum", 0.083, 7.45), ("MRNA", "Biotech", 0.075, 142.40),
    ("IBRX", "Biotech", 0.056, 6.05), ("RKLB", "Space", 0.079, 4.88), ("CCJ", "Uranium", 0.078, 52.60),
    ("CRWD", "Cybersecurity", 0.077, 313.00), ("MARA", "Crypto", 0.076, 19.90), ("SNOW", "Cloud", 0.059, 153.70),
    ("TSM", "Semiconductors", 0.050, 152.60),
]


def seed_plan(run_id: str = "seed-003", equity: float = 100_000.0, pack: list | None = None) -> OrderPlan:
    """The 12-order plan (priority = pack order), quantities floor(weight × equity / close)."""
    pack = pack or PACK
    orders = []
    for i, (sym, sector, w, close) in enumerate(pack):
        qty = int(w * equity // close)
        orders.append(PlannedOrder(
            client_order_id=str(ClientOrderId.for_order(run_id, "dir", sym, Layer.DIRECTIONAL)), symbol=sym, side=Side.BUY,
            qty=qty, type=OrderType.MARKET, limit_price=None, time_in_force=TimeInForce.DAY,
            layer=Layer.DIRECTIONAL, strategy="simple", sector=sector, cap_tier="large", score=95 - i,
            weight=w, est_price=close, est_cost=round(qty * close, 2), priority=i,
        ))
    allocation = sum(o.est_cost for o in orders) / equity
    return OrderPlan(
        schema="wolfkit.orders/1", run_id=run_id, as_of=SESSION, created_at=datetime(2024, 6, 3, 8, 30, tzinfo=NY),
        account=Account(equity=equity, buying_power=equity, multiplier=1.0), params_digest="test",
        orders=orders,
        summary=Summary(positions=len(orders), allocation=allocation, sector_weights={}, cap_weights={},
                        method="greedy", objective=0.0, leftover_cash=equity * (1 - allocation)),
    )


def gapped_asks(pack: list | None = None, seed: int = 3) -> dict[str, float]:
    """Open asks 0–8% above yesterday's close (both ends included), shuffled across the pack."""
    pack = pack or PACK
    gaps = np.random.default_rng(seed).permutation(np.linspace(0.0, 0.08, len(pack)))
    return {sym: round(close * (1 + g), 2) for (sym, _, _, close), g in zip(pack, gaps)}
