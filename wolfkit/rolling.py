"""Rolling-window arithmetic over dates x symbols arrays, shared by the scanner and its panel form.

Rows are dates (axis -2), columns symbols (axis -1); a leading batch axis (several windows at once)
is allowed everywhere. Everything is cumulative sums, running maxima or index arithmetic over whole
arrays: no Python loop over dates or symbols. NaN means "no value" throughout.
"""

from __future__ import annotations

import numpy as np


def last_seen(observed: np.ndarray) -> np.ndarray:
    """Row index of the latest observed row at or before each row (-1 before the first)."""
    rows = np.arange(observed.shape[-2])[:, None]
    return np.maximum.accumulate(np.where(observed, rows, -1), axis=-2)


def next_seen(observed: np.ndarray) -> np.ndarray:
    """Row index of the first observed row at or after each row (the row count when there is none)."""
    T = observed.shape[-2]
    rows = np.arange(T)[:, None]
    flipped = np.flip(np.where(observed, rows, T), axis=-2)
    return np.flip(np.minimum.accumulate(flipped, axis=-2), axis=-2)


def ffill(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs down each column (leading NaNs stay)."""
    seen = last_seen(~np.isnan(a))
    out = np.take_along_axis(a, np.maximum(seen, 0), axis=-2)
    out[seen < 0] = np.nan
    return out


def shift(a: np.ndarray) -> np.ndarray:
    """Each row gets the previous row's values (the first row NaN): "known before this session"."""
    out = np.full_like(a, np.nan)
    out[..., 1:, :] = a[..., :-1, :]
    return out


def _cumulative(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running sums of the finite values and of their count, with a leading zero row.

    An infinite value (a division by a zero price) counts as missing, so it cannot spoil every later
    window's difference of sums.
    """
    ok = np.isfinite(a)
    zero = np.zeros(a.shape[:-2] + (1, a.shape[-1]))
    total = np.concatenate([zero, np.cumsum(np.where(ok, a, 0.0), axis=-2)], axis=-2)
    count = np.concatenate([zero, np.cumsum(ok, axis=-2)], axis=-2)
    return total, count


def rolling_mean(a: np.ndarray, w: int) -> np.ndarray:
    """Mean over the last w rows of each column, over the finite values present (at least half of w).

    Summed lag by lag, oldest first, rather than by differences of running sums: a row's mean then
    depends on its own w rows only, to the last bit, wherever the array starts. The panel form of the
    scan relies on it: a stop or target level a day's high or low touches exactly must be touched
    (or not) in both forms.
    """
    ok = np.isfinite(a)
    x = np.where(ok, a, 0.0)
    total = np.zeros(a.shape)
    count = np.zeros(a.shape)
    T = a.shape[-2]
    for lag in range(min(w, T) - 1, -1, -1):
        total[..., lag:, :] += x[..., :T - lag, :]
        count[..., lag:, :] += ok[..., :T - lag, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= max(2, w // 2), total / count, np.nan)


def sums_since(a: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the finite values in rows lo[t, j] .. t of each column (2-D `a`).

    `lo` is broadcast to `a`'s shape; where lo > t the window is empty (sum 0, count 0).
    """
    total, count = _cumulative(a)
    T = a.shape[0]
    hi = np.broadcast_to(np.arange(1, T + 1)[:, None], a.shape)
    low = np.clip(np.broadcast_to(lo, a.shape), 0, hi)
    s = np.take_along_axis(total, hi, axis=0) - np.take_along_axis(total, low, axis=0)
    n = np.take_along_axis(count, hi, axis=0) - np.take_along_axis(count, low, axis=0)
    return s, n


class RangeMax:
    """Maximum of a column over any row range, in constant time per query (a sparse table).

    NaN is ignored; a range with no value gives NaN.
    """

    def __init__(self, a: np.ndarray) -> None:
        level = np.where(np.isnan(a), -np.inf, a)
        self.levels = [level]
        span = 1
        while 2 * span <= a.shape[0]:
            level = np.maximum(level[:-span], level[span:])
            self.levels.append(level)
            span *= 2

    def query(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Max over rows lo .. hi (inclusive) of each column; `lo`, `hi` are (rows, columns) int arrays."""
        length = hi - lo + 1
        out = np.full(lo.shape, -np.inf)
        cols = np.broadcast_to(np.arange(lo.shape[1]), lo.shape)
        k = np.zeros(lo.shape, dtype=int)
        pos = length > 0
        k[pos] = np.floor(np.log2(length[pos])).astype(int)
        for j, level in enumerate(self.levels):
            m = pos & (k == j)
            if m.any():
                span = 1 << j
                out[m] = np.maximum(level[lo[m], cols[m]], level[hi[m] - span + 1, cols[m]])
        return np.where(np.isneginf(out), np.nan, out)
