"""The simulated account: cash, positions and Alpaca's buying-power formula.

Kept apart from the order book so the money rule reads in one place::

    equity        = cash + Σ qty × mark                      (mark: quote mid, else last fill)
    buying_power  = max(0, multiplier × equity − Σ |qty| × mark − Σ open reservations)

With multiplier 1 (cash account) this is cash minus reservations; with 2 (Reg-T margin) it is twice
equity less the gross position value and reservations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wolfkit.broker.base import AccountInfo, Position
from wolfkit.broker.quotes import QuoteBook
from wolfkit.domain import Side


@dataclass(frozen=True)
class Totals:
    equity: float
    long_market_value: float
    short_market_value: float
    buying_power: float


class SimAccount:
    """Cash and signed positions (with average entry prices), marked against a `QuoteBook`."""

    def __init__(self, cash: float, multiplier: float, market: QuoteBook):
        self.cash = float(cash)
        self.multiplier = float(multiplier)
        self.market = market
        self.positions: dict[str, list[float]] = {}  # symbol -> [signed qty, avg entry]
        self.last_px: dict[str, float] = {}

    def held(self, symbol: str) -> float:
        """Signed shares held (negative: short)."""
        return self.positions.get(symbol, [0.0, 0.0])[0]

    def mark(self, symbol: str) -> float:
        q = self.market.get(symbol)
        if q is not None:
            return q.mid
        return self.last_px.get(symbol, self.positions.get(symbol, [0.0, 0.0])[1])

    def totals(self, reserved: float) -> Totals:
        lmv = smv = 0.0
        for s, (q, _) in self.positions.items():
            v = q * self.mark(s)
            if q > 0:
                lmv += v
            else:
                smv += v
        equity = self.cash + lmv + smv
        bp = max(0.0, self.multiplier * equity - (lmv - smv) - reserved)
        return Totals(equity, lmv, smv, bp)

    def info(self, reserved: float) -> AccountInfo:
        t = self.totals(reserved)
        return AccountInfo(
            equity=round(t.equity, 2), cash=round(self.cash, 2), buying_power=round(t.buying_power, 2),
            multiplier=self.multiplier, long_market_value=round(t.long_market_value, 2),
            short_market_value=round(t.short_market_value, 2),
        )

    def book_fill(self, symbol: str, side: Side, qty: int, price: float) -> None:
        """Move cash and the position for one execution (average entry kept on adds, reset on a flip)."""
        sign = 1 if side == Side.BUY else -1
        self.cash -= sign * qty * price
        q, avg = self.positions.get(symbol, [0.0, 0.0])
        nq = q + sign * qty
        if q == 0 or (q > 0) == (sign > 0):  # opening or adding
            avg = (abs(q) * avg + qty * price) / abs(nq)
        elif (nq > 0) != (q > 0) and nq != 0:  # crossed through zero
            avg = price
        if nq == 0:
            self.positions.pop(symbol, None)
        else:
            self.positions[symbol] = [nq, avg]
        self.last_px[symbol] = price

    def position_list(self) -> list[Position]:
        out = []
        for s, (q, avg) in sorted(self.positions.items()):
            m = self.mark(s)
            out.append(Position(s, int(q), avg, round(q * m, 2), round(q * (m - avg), 2)))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"multiplier": self.multiplier, "cash": self.cash,
                "positions": {s: list(v) for s, v in self.positions.items()}, "last_px": dict(self.last_px)}

    def load(self, state: dict[str, Any]) -> None:
        """Take cash, positions and last prices from a snapshot made by `to_dict`."""
        self.cash = state["cash"]
        self.positions = {s: list(v) for s, v in state["positions"].items()}
        self.last_px = dict(state["last_px"])
