"""The simulated market's quote book: the latest bid/ask per symbol, updated a whole minute at a time.

Both simulated venues read prices from it — `SimBroker` (and so the HTTP emulator that serves one)
prices reservations and fills from these quotes, and a replay feeds it minute bars.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from wolfkit.broker.base import Quote


class QuoteBook:
    """Latest bid/ask per symbol, stored in arrays so a whole minute updates in one assignment.

    `update` takes parallel sequences; passing the same symbol order every minute (a replay) hits a
    cached index and costs a few vector assignments. Bars become quotes at close ± half `spread_bps`.
    """

    def __init__(self, spread_bps: float = 0.0):
        if not (spread_bps >= 0 and math.isfinite(spread_bps)):
            raise ValueError(f"spread_bps must be a finite number >= 0, got {spread_bps}")
        self.spread_bps = spread_bps
        self._index: dict[str, int] = {}
        self._symbols: list[str] = []
        self._bid = np.full(0, np.nan)
        self._ask = np.full(0, np.nan)
        self._ts: list[datetime | None] = []
        self._cache_key: tuple[str, ...] | None = None
        self._cache_pos: npt.NDArray[np.int64] | None = None
        self.last_update: datetime | None = None

    def _positions(self, symbols: Sequence[str]) -> npt.NDArray[np.int64]:
        key = tuple(symbols)
        if key == self._cache_key and self._cache_pos is not None:
            return self._cache_pos
        new = [s for s in dict.fromkeys(key) if s not in self._index]
        if new:
            start = len(self._symbols)
            for i, s in enumerate(new):
                self._index[s] = start + i
            self._symbols.extend(new)
            self._ts.extend([None] * len(new))
            pad = np.full(len(new), np.nan)
            self._bid = np.concatenate([self._bid, pad])
            self._ask = np.concatenate([self._ask, pad])
        pos = np.fromiter((self._index[s] for s in key), dtype=np.int64, count=len(key))
        self._cache_key, self._cache_pos = key, pos
        return pos

    def update(self, symbols: Sequence[str], bid: npt.ArrayLike, ask: npt.ArrayLike,
               ts: datetime | None = None) -> None:
        """Set bid/ask for many symbols at once (arrays or sequences aligned with `symbols`)."""
        bids = np.asarray(bid, dtype=float)
        asks = np.asarray(ask, dtype=float)
        if bids.shape != (len(symbols),) or asks.shape != (len(symbols),):
            raise ValueError("bid and ask must have one value per symbol")
        bad = ~(np.isfinite(bids) & np.isfinite(asks) & (bids > 0) & (asks >= bids))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{symbols[i]}: bid {bids[i]} / ask {asks[i]} must be finite, > 0, bid <= ask")
        pos = self._positions(symbols)
        self._bid[pos] = bids
        self._ask[pos] = asks
        if ts is not None:
            for p in pos.tolist():
                self._ts[p] = ts
            self.last_update = ts

    def set(self, symbol: str, bid: float, ask: float | None = None, ts: datetime | None = None) -> None:
        """Set one symbol's quote (`ask` defaults to `bid`: a mark with no spread)."""
        self.update([symbol], [bid], [bid if ask is None else ask], ts)

    def update_from_bars(self, symbols: Sequence[str], close: npt.ArrayLike, ts: datetime | None = None) -> None:
        """Quotes from bar closes: close ∓ half the spread."""
        closes = np.asarray(close, dtype=float)
        half = self.spread_bps / 2e4
        self.update(symbols, closes * (1 - half), closes * (1 + half), ts)

    def get(self, symbol: str) -> Quote | None:
        i = self._index.get(symbol)
        if i is None or not math.isfinite(self._bid[i]):
            return None
        return Quote(symbol, float(self._bid[i]), float(self._ask[i]), self._ts[i])

    def symbols(self) -> list[str]:
        return [s for s in self._symbols if math.isfinite(self._bid[self._index[s]])]

    def to_dict(self) -> dict[str, Any]:
        return {
            "spread_bps": self.spread_bps,
            "quotes": {
                s: [float(self._bid[i]), float(self._ask[i]), _iso(self._ts[i])]
                for s, i in self._index.items() if math.isfinite(self._bid[i])
            },
            "last_update": self.last_update.isoformat() if self.last_update else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuoteBook:
        book = cls(d.get("spread_bps", 0.0))
        for s, (b, a, ts) in d["quotes"].items():
            book.set(s, b, a, datetime.fromisoformat(ts) if ts else None)
        book.last_update = datetime.fromisoformat(d["last_update"]) if d.get("last_update") else None
        return book


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None
