"""Signal weights for the composite score: fixed (`scan.signals`) or fitted walk-forward from each
signal's past information coefficient (`scan.weights: fitted`).

Why and how:

- **The IC of a signal on a session** is the rank correlation, over the names that have both, of the
  signal's value that morning (computed from the bars strictly before the session) with the session's
  open→close return — the return the directional pack earns. Sessions with fewer than `MIN_NAMES`
  such names have no IC (the same rule as `performance.information_coefficient`).
- **Walk-forward.** Sessions are grouped in refit blocks of `scan.fit.refit_every` weekdays counted
  from a fixed epoch (`EPOCH`), so the live scan and a backtest over any window refit on the same
  dates. Every session of a block is weighted from the ICs of the last `scan.fit.window` sessions
  strictly before the block's first weekday: nothing a session's weights read was unknown that
  morning, and cutting the data after a day leaves every weight up to it unchanged.
- **From IC to weight.** A signal with at least `scan.fit.min_sessions` ICs in the window is fitted;
  its IC-proportional weight is its mean IC (a negative mean counts as 0) over the fitted signals'
  total, times the fixed weights' total over those signals (so the composite's scale is kept). The
  weight used is `shrink` × fixed + (1 − `shrink`) × IC-proportional. A signal with too few ICs
  keeps its fixed weight; when no fitted signal has a positive mean IC, all keep theirs.
- **Negative IC → weight 0, never sign-flipped.** Every signal is defined so that higher means more
  attractive, and the component columns (`score_<signal>`) a trader reads keep that meaning only
  with weights ≥ 0 (the parameters refuse negative weights for the same reason). A signal whose IC
  turns negative for a few months is more often noise than a reversed edge; flipping it would fit
  that noise and trade it at full strength, while dropping it to 0 only stops listening to it until
  its IC recovers.

Pure: tables and arrays in, a typed `SignalWeights` out. The raw values come from `raw_signals`
(each signal's `compute_panel`, or its `compute` per row), used by the backtest's panel scan and by
the live scan over its lookback alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from wolfkit.config import SignalWeighting
from wolfkit.errors import BadInputError
from wolfkit.rolling import ffill
from wolfkit.signals import PanelSignal, Windows, signal_values

if TYPE_CHECKING:
    from wolfkit.config import ScanParams, SignalFitParams
    from wolfkit.signals import Panel, Signal

EPOCH = date(2000, 1, 3)  # a Monday: refit blocks are counted in weekdays from here
MIN_NAMES = 5  # a session's IC needs this many names with both values (as performance.information_coefficient)


# ---------------------------------------------------------------- raw values and ICs


def raw_signals(panel: Panel, signals: Sequence[Signal], lookback: int,
                windows: Windows | None = None, per_row: bool = True) -> dict[str, np.ndarray | None]:
    """Each signal's value on every scan window of `panel` (row t: the `lookback` rows ending at t).

    A signal with `compute_panel` gives all rows at once; one without it is computed row by row from
    its window (`per_row`; else None: the caller computes what it needs). A signal that needs OHLC on
    close-only data is NaN everywhere."""
    windows = windows if windows is not None else Windows.of(panel, lookback)
    out: dict[str, np.ndarray | None] = {}
    for s in signals:
        if s.needs_ohlc and not panel.has_ohlc:
            out[s.name] = np.full(panel.shape, np.nan)
        elif isinstance(s, PanelSignal):
            out[s.name] = _checked(s, s.compute_panel(windows), panel.shape)
        elif per_row:
            values = np.full(panel.shape, np.nan)
            for t in range(panel.shape[0]):
                w = panel.rows(max(0, t + 1 - lookback), t + 1)
                values[t] = signal_values(s, replace(w, close=ffill(w.close)))
            out[s.name] = values
        else:
            out[s.name] = None
    return out


def _checked(s: Signal, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if not isinstance(values, np.ndarray) or values.shape != shape:
        raise BadInputError(
            f"signal {s.name!r}: compute_panel() must return a dates x symbols array of shape "
            f"{shape}, got {getattr(values, 'shape', type(values).__name__)}"
        )
    return values.astype(float)


def open_to_close(panel: Panel) -> np.ndarray:
    """Each bar's open→close return (NaN where either is missing or the open is not positive)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(panel.open > 0, panel.close / panel.open - 1, np.nan)


def _row_ranks(a: np.ndarray) -> np.ndarray:
    return pd.DataFrame(a).rank(axis=1, method="average").to_numpy()


def ic_table(raw: Mapping[str, np.ndarray | None], oc: np.ndarray, dates: pd.DatetimeIndex) -> pd.DataFrame:
    """Per session (row r ≥ 1 of the panel) and signal: the IC of the value on the window ending at
    row r − 1 (the morning of session r) with row r's open→close. Index: the session dates; NaN where
    fewer than `MIN_NAMES` names have both or either side is constant."""
    y = oc[1:]
    cols = {}
    for name, x_all in raw.items():
        if x_all is None:
            raise BadInputError(f"signal {name!r}: no values to fit its weight from (internal: raw_signals "
                                "was called with per_row=False)")
        x = x_all[:-1]
        ok = np.isfinite(x) & np.isfinite(y)
        rx, ry = _row_ranks(np.where(ok, x, np.nan)), _row_ranks(np.where(ok, y, np.nan))
        n = ok.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mx, my = np.nansum(rx, axis=1) / n, np.nansum(ry, axis=1) / n
            dx, dy = rx - mx[:, None], ry - my[:, None]
            cov = np.nansum(dx * dy, axis=1)
            vx, vy = np.nansum(dx * dx, axis=1), np.nansum(dy * dy, axis=1)
            ic = np.clip(cov / np.sqrt(vx * vy), -1.0, 1.0)
        cols[name] = np.where((n >= MIN_NAMES) & (vx > 1e-12) & (vy > 1e-12), ic, np.nan)
    return pd.DataFrame(cols, index=pd.DatetimeIndex(dates[1:], name="date"), dtype=float)


# ---------------------------------------------------------------- the walk-forward fit


def refit_start(session: date, every: int) -> date:
    """The first weekday of `session`'s refit block (blocks of `every` weekdays from `EPOCH`)."""
    k = int(np.busday_count(EPOCH, session))
    return pd.Timestamp(np.busday_offset(EPOCH, (k // every) * every)).date()


@dataclass(frozen=True)
class Fit:
    """One refit: the weights used by the sessions of the block starting at `refit`, and what they
    were fitted from (the ICs of at most `window` sessions strictly before `refit`)."""

    refit: date
    weights: dict[str, float]
    ic_mean: dict[str, float | None]
    ic_sessions: dict[str, int]
    fitted: tuple[str, ...]  # the signals with enough ICs; the others kept their fixed weight
    note: str = ""

    def record(self) -> dict[str, Any]:
        return {"refit": self.refit.isoformat(), "weights": self.weights, "ic_mean": self.ic_mean,
                "ic_sessions": self.ic_sessions, "fitted": list(self.fitted), "note": self.note}


@dataclass(frozen=True)
class SignalWeights:
    """The composite's weights for each session: fixed, or one `Fit` per refit block."""

    mode: SignalWeighting
    fixed: dict[str, float]
    fits: dict[date, Fit] = field(default_factory=dict)  # by refit date
    block: dict[date, date] = field(default_factory=dict)  # session -> its refit date

    def for_session(self, session: date) -> dict[str, float]:
        """The weights by signal name (in `fixed`'s order) that `session`'s score uses."""
        if self.mode is SignalWeighting.FIXED:
            return dict(self.fixed)
        return dict(self.fits[self.block[session]].weights)

    def record(self) -> dict[str, Any]:
        """What summary.json keeps: the mode, the fixed weights and every refit."""
        out: dict[str, Any] = {"mode": str(self.mode), "fixed": self.fixed}
        if self.mode is SignalWeighting.FITTED:
            out["refits"] = [f.record() for f in self.fits.values()]
        return out


def fixed_weights(fixed: Mapping[str, float]) -> SignalWeights:
    return SignalWeights(SignalWeighting.FIXED, dict(fixed))


def fit_one(ic: pd.DataFrame, refit: date, fixed: Mapping[str, float], fit: SignalFitParams) -> Fit:
    """The weights for the block starting at `refit`, from the last `fit.window` rows of `ic` dated
    strictly before it (see the module docstring)."""
    past = ic[ic.index < pd.Timestamp(refit)].iloc[-fit.window:]
    n = {k: int(past[k].notna().sum()) if k in past else 0 for k in fixed}
    mean = {k: (float(past[k].mean()) if n[k] else None) for k in fixed}
    fitted = tuple(k for k in fixed if n[k] >= fit.min_sessions)
    positive = {k: max(mean[k] or 0.0, 0.0) for k in fitted}
    total = sum(positive.values())
    note = ""
    if not fitted:
        note = f"no signal has {fit.min_sessions} sessions of IC before {refit}: fixed weights"
    elif total <= 0:
        note = "no fitted signal has a positive mean IC: fixed weights"
    mass = sum(fixed[k] for k in fitted)
    weights = {}
    for k, w in fixed.items():
        if k in fitted and total > 0:
            weights[k] = fit.shrink * w + (1 - fit.shrink) * mass * positive[k] / total
        else:
            weights[k] = float(w)
    return Fit(refit, weights, mean, n, fitted, note)


def fit_weights(ic: pd.DataFrame, sessions: Sequence[date], fixed: Mapping[str, float],
                fit: SignalFitParams) -> SignalWeights:
    """Fitted weights for every session of `sessions` (see the module docstring). `ic`: `ic_table`."""
    fits: dict[date, Fit] = {}
    block: dict[date, date] = {}
    for d in sessions:
        b = refit_start(d, fit.refit_every)
        if b not in fits:
            fits[b] = fit_one(ic, b, fixed, fit)
        block[d] = b
    return SignalWeights(SignalWeighting.FITTED, dict(fixed), fits, block)


def history_days(scan: ScanParams) -> int:
    """Calendar days of bars before a session that a fitted scan reads: its lookback, the IC window
    and one refit block, at ~1.5 calendar days per session, plus a month's margin."""
    if scan.weights is SignalWeighting.FIXED:
        return int(scan.lookback_days * 1.5) + 30
    return int((scan.lookback_days + scan.fit.window + scan.fit.refit_every) * 1.5) + 30


def weights_for(panel: Panel, signals: Sequence[Signal], fixed: Mapping[str, float], sessions: Sequence[date],
                scan: ScanParams, raw: Mapping[str, np.ndarray | None] | None = None) -> SignalWeights:
    """The weights of each of `sessions` from `panel` (bars before and around them: only those strictly
    before each refit are read). Fixed mode reads nothing. `raw`: `raw_signals` of `panel` when the
    caller has them (a signal left None is computed here)."""
    if scan.weights is SignalWeighting.FIXED:
        return fixed_weights(fixed)
    if raw is None or any(v is None for v in raw.values()):
        raw = raw_signals(panel, signals, scan.lookback_days)
    return fit_weights(ic_table(raw, open_to_close(panel), panel.dates), sessions, fixed, scan.fit)


def session_weights_note(weights: Mapping[str, float]) -> str:
    """One line: the weights a scan used."""
    return "signal weights: " + ", ".join(f"{k} {v:.3g}" for k, v in weights.items())

