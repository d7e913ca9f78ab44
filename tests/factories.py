"""Shared test scaffolding, one of each: the reference pack (12 names of a $100k cash account, sized from
yesterday's closes, whose open gaps up 0–8%), the planned-order and order-plan builders, the quoted simulated broker and the
fake clock. Tests build their inputs from these instead of keeping their own copies."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from wolfkit.broker.sim import SimBroker
from wolfkit.calendar import NY
from wolfkit.cli import main
from wolfkit.domain import ClientOrderId, Layer, OrderType, Side, Strategy, TimeInForce
from wolfkit.orders import Account, MaxdiffPlan, OrderPlan, PlannedOrder, Summary

SESSION = date(2024, 6, 3)  # a Monday, a full NYSE session
OPEN = datetime.combine(SESSION, time(9, 30, 5), tzinfo=NY)  # five seconds after the opening bell
PREMARKET = datetime.combine(SESSION, time(8, 45), tzinfo=NY)
EQUITY = 100_000.0
ROOT = Path(__file__).resolve().parents[1]
# 40 demo-market names over every sector: a universe small enough to scan in a test, varied enough to pack
DEMO_SYMBOLS = (
    "AAPL", "MSFT", "NVDA", "AMD", "PLTR", "IONQ", "RGTI", "MRNA", "CRSP", "BEAM", "RKLB", "SPCE", "CCJ",
    "DNN", "UUUU", "CRWD", "PANW", "FTNT", "MARA", "RIOT", "COIN", "SNOW", "NET", "DDOG", "TSM", "JPM",
    "BAC", "XOM", "CVX", "DUK", "NEE", "PG", "KO", "WMT", "HD", "CAT", "GE", "LLY", "PFE", "AMT",
)


class PackEntry(NamedTuple):
    """One name of a pack: its sector, its weight (fraction of equity) and yesterday's close (USD)."""

    symbol: str
    sector: str
    weight: float
    close: float


# The reference pack: 12 names over 10 sectors, 94.6% of a $100k cash account at the closes it was sized from
# (the failure case that sequential, buying-power-aware execution exists for: sent all at once into an open
# that gapped up, most of it was refused).
REFERENCE_PACK: tuple[PackEntry, ...] = (
    PackEntry("NVDA", "AI/Semiconductors", 0.117, 450.0), PackEntry("AMD", "AI/Semiconductors", 0.078, 160.0),
    PackEntry("PLTR", "AI/Software", 0.12, 25.0), PackEntry("IONQ", "Quantum", 0.083, 14.0),
    PackEntry("MRNA", "Biotech", 0.0803, 110.0), PackEntry("IBRX", "Biotech", 0.051, 4.2),
    PackEntry("RKLB", "Space", 0.079, 22.0), PackEntry("CCJ", "Uranium", 0.078, 48.0),
    PackEntry("CRWD", "Cybersecurity", 0.077, 300.0), PackEntry("MARA", "Crypto", 0.076, 20.0),
    PackEntry("SNOW", "Cloud", 0.059, 170.0), PackEntry("TSM", "Semiconductors", 0.0477, 180.0),
)


def gapped_asks(pack: Sequence[PackEntry] = REFERENCE_PACK, seed: int = 3) -> dict[str, float]:
    """The open's asks: 0–8% above yesterday's close (both ends included), shuffled across the pack by `seed`."""
    gaps = np.random.default_rng(seed).permutation(np.linspace(0.0, 0.08, len(pack)))
    return {e.symbol: round(e.close * (1 + g), 2) for e, g in zip(pack, gaps)}


def planned_order(symbol: str, qty: int, price: float, *, run_id: str = "ref", layer: Layer = Layer.DIRECTIONAL,
                  side: Side = Side.BUY, priority: int = 0, equity: float = EQUITY, **fields: Any) -> PlannedOrder:
    """One planned order as `build` writes it: a market order for the directional layer, a limit order at `price`
    for the maxdiff layer, estimated at `price` (cost qty × price, weight cost / equity), its client id derived
    from run, layer and symbol. `fields` set any other field (sector, score, take_profit, time_in_force, …)."""
    maxdiff = layer == Layer.MAXDIFF
    return PlannedOrder.model_validate({
        "client_order_id": str(ClientOrderId.for_order(run_id, "md" if maxdiff else "dir", symbol, layer)),
        "symbol": symbol, "side": side, "qty": qty, "type": OrderType.LIMIT if maxdiff else OrderType.MARKET,
        "limit_price": price if maxdiff else None, "time_in_force": TimeInForce.DAY, "layer": layer,
        "strategy": Strategy.MAXDIFF if maxdiff else Strategy.SIMPLE, "sector": "Tech", "cap_tier": "large",
        "score": 80 if maxdiff else 90, "weight": qty * price / equity, "est_price": price,
        "est_cost": round(qty * price, 2), "priority": priority,
    } | fields)


def make_plan(*, pack: Sequence[PackEntry] = REFERENCE_PACK, run_id: str = "ref", equity: float = EQUITY,
              buying_power: float | None = None, scale: float = 1.0, as_of: date = SESSION,
              tif: TimeInForce = TimeInForce.DAY, brackets: bool = False,
              maxdiff: Sequence[tuple[str, int, float]] = (), extra: Sequence[PlannedOrder] = (),
              maxdiff_plans: Sequence[MaxdiffPlan] = ()) -> OrderPlan:
    """An order plan as `build` writes it: the pack's directional market buys in pack order (priority = index,
    qty = floor(weight × `scale` × equity / close); with `brackets`, take profit +10% and stop −5% of the
    close), then maxdiff limit buys (symbol, qty, limit), then `extra` orders as given, and `maxdiff_plans`.
    The account is cash unless `buying_power` says otherwise; the summary's allocation is what the orders cost."""
    orders = [
        planned_order(e.symbol, int(e.weight * scale * equity // e.close), e.close, run_id=run_id, priority=i,
                      equity=equity, time_in_force=tif, sector=e.sector, score=95 - i, weight=e.weight * scale,
                      take_profit=round(e.close * 1.1, 2) if brackets else None,
                      stop_loss=round(e.close * 0.95, 2) if brackets else None)
        for i, e in enumerate(pack)]
    orders += [planned_order(sym, qty, limit, run_id=run_id, layer=Layer.MAXDIFF, priority=len(pack) + k,
                             equity=equity, sector="-")
               for k, (sym, qty, limit) in enumerate(maxdiff)]
    orders += extra
    bp = equity if buying_power is None else buying_power
    allocation = sum(o.est_cost for o in orders) / equity
    return OrderPlan(
        schema="wolfkit.orders/1", run_id=run_id, as_of=as_of, created_at=datetime.combine(as_of, time(8, 30), tzinfo=NY),
        account=Account(equity=equity, buying_power=bp, multiplier=bp / equity), params_digest="test",
        orders=orders, maxdiff_plans=list(maxdiff_plans), synthetic_prices=False,
        summary=Summary(positions=len(orders), allocation=allocation, sector_weights={}, cap_weights={},
                        method="greedy", objective=0.0, leftover_cash=equity * (1 - allocation)))


def demo_orders(folder: Path, symbols: Sequence[str] | None = None, settings: str = "",
                buying_power: float | None = None) -> tuple[Path, Path]:
    """A small real plan, made the way a user makes one: `wolfkit scan` and `wolfkit build` ($100k equity) on the
    demo market for the latest session, over `symbols` (None: the whole universe), with a parameter file that extends demo.yaml by
    `settings` (YAML). Returns the parameter file and the orders file, both in `folder`."""
    params, opp, orders = folder / "small.yaml", folder / "opp.csv", folder / "orders.json"
    # `symbols` None: the whole demo universe, so the latest session always has enough candidates for the pack
    # (a 40-name subset left 10 candidates in 4 sectors on some days, infeasible under a 30% sector cap)
    universe = "" if symbols is None else f"data:\n  symbols: [{', '.join(symbols)}]\n"
    params.write_text(f"extends: {ROOT / 'parameters/demo.yaml'}\n{universe}{settings}")
    assert main(["scan", "--params", str(params), "--date", "latest", "--out", str(opp)]) == 0
    bp = [] if buying_power is None else ["--buying-power", f"{buying_power:.0f}"]
    assert main(["build", "--opportunities", str(opp), "--params", str(params), "--equity", f"{EQUITY:.0f}", *bp,
                 "--date", "latest", "--out", str(orders)]) == 0
    return params, orders


def quoted_sim(asks: Mapping[str, float] | None = None, *, bids: Mapping[str, float] | None = None,
               equity: float = EQUITY, multiplier: float = 1.0, now: datetime | None = OPEN,
               **sim: Any) -> SimBroker:
    """A simulated account whose clock stands at `now` (None: the real clock, for a broker saved to a file),
    quoted at `asks` (default: the reference pack's gapped open) with each bid `bids[symbol]` or, when not
    given, 0.1% under the ask. `sim` goes to SimBroker (market_buffer, seed, rate_limit_per_minute, …)."""
    b = SimBroker(equity, multiplier, clock=(lambda: now) if now is not None else None, **sim)
    for sym, ask in (gapped_asks() if asks is None else asks).items():
        bid = (bids or {}).get(sym, round(ask * 0.999, 2))
        b.market.set(sym, bid, ask, now)
    return b


class FakeClock:
    """Time that moves only when someone sleeps or reads the wall clock: `t` seconds have passed since
    `start`; sleep(s) adds s (and records it in `slept`) so rate-limit waits take no wall time; now() is a
    wall-clock reading that first advances by `tick` and runs `on_tick` (a live loop that polls without
    sleeping sees the minutes go by); `instant` is the current time without a reading. Thread-safe, so
    one clock can serve the code under test and a server in another thread."""

    def __init__(self, start: datetime = OPEN, tick: timedelta = timedelta(0),
                 on_tick: Callable[[], None] | None = None) -> None:
        self.start, self.tick, self.on_tick = start, tick, on_tick
        self.t = 0.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def sleep(self, s: float) -> None:
        with self._lock:
            self.slept.append(s)
            self.t += max(0.0, s)

    def monotonic(self) -> float:
        with self._lock:
            return self.t

    @property
    def instant(self) -> datetime:
        return self.start + timedelta(seconds=self.monotonic())

    def now(self) -> datetime:
        with self._lock:
            self.t += self.tick.total_seconds()
        if self.on_tick is not None:
            self.on_tick()
        return self.instant
