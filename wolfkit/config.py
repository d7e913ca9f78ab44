"""The parameter set: one pydantic model for every knob, loaded from `parameters/*.yaml`.

Unknown keys are rejected (a typo must not silently fall back to a default) and impossible values
fail with one message naming the file, the key path, what was given and what is allowed. A file may
start with `extends: other.yaml` (resolved beside it) and override only what differs. The YAML itself
is read strictly: UTF-8 only, a key given twice in one mapping is an error (never "the last one
wins"), nesting is bounded, and NaN or infinite numbers are refused everywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from wolfkit.errors import BadInputError
from wolfkit.symbols import Symbol

CAP_TIERS = ("mega", "large", "mid", "small", "micro")


class _Strict(BaseModel):
    """Every parameter model: unknown keys refused, NaN/inf refused, and frozen once validated — a loaded
    set is never changed in place (a command, a widget or a test that wants other values makes a new,
    re-validated set with `Params.with_changes`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Fraction = Field(ge=0.0, le=1.0)


class BadRows(StrEnum):
    """What reading a market-data file does with a bad row (empty or impossible prices, duplicates)."""

    STOP = "stop"  # exit 2 naming the file, line and field
    QUARANTINE = "quarantine"  # drop the row, count it on the console, list it in data_quality.csv


class DataParams(_Strict):
    """Where bars, quotes and universe metadata come from, and how much dirt in them is tolerated.

    Relative paths resolve against the project root (the folder holding `parameters/`), wherever the
    command or notebook runs from."""

    source: str = Field(
        "demo", description="demo | demo:N (N generated symbols) | csv | parquet | alpaca"
    )
    bars_path: str | None = Field(None, description="csv/parquet: long OHLCV or wide close table")
    universe_path: str | None = Field(None, description="csv/parquet: symbol, sector, market_cap")
    symbols: list[Symbol] | None = Field(None, description="restrict the universe to these symbols")
    seed: int = Field(7, description="demo market seed (same seed, same market)")
    cache_dir: str = Field(".cache/wolfkit", description="on-disk parquet cache for fetched bars")
    bad_rows: BadRows = Field(
        BadRows.QUARANTINE,
        description="bad rows in a bars file (empty or unparseable price, open/close outside high-low, "
        "non-positive price, duplicate symbol+date): quarantine drops them, says how many and lists each "
        "(file, line, field, problem) in data_quality.csv, because one empty cell in 480,000 rows must not "
        "stop the morning and such a row cannot be traded on anyway; stop exits 2 at the first problem",
    )
    jump_threshold: float = Field(
        0.35, gt=0.0, le=5.0,
        description="a one-day close-to-close move beyond this (absolute log return: 0.35 = -30% or +42%) with no "
        "matching move in its sector is a spin-off or bad print, reported and left out of research",
    )
    universe_as_of: date | None = Field(
        None,
        description="the date the universe file describes (YYYY-MM-DD); a backtest starting before it is "
        "survivorship-biased, and an unknown date is reported as possibly so",
    )

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        base, _, n = v.partition(":")
        if base not in ("demo", "csv", "parquet", "alpaca"):
            raise ValueError("must be demo, demo:N, csv, parquet or alpaca")
        if n:
            if base != "demo" or not n.isdigit() or int(n) < 1:
                raise ValueError("only demo takes a size, as demo:N with N a positive integer")
        return v

    @model_validator(mode="after")
    def _paths(self) -> DataParams:
        base = self.source.partition(":")[0]
        if base in ("csv", "parquet") and not (self.bars_path and self.universe_path):
            raise ValueError(
                f"data.source {base} needs data.bars_path and data.universe_path "
                "(got bars_path={!r}, universe_path={!r})".format(self.bars_path, self.universe_path)
            )
        return self


class SignalWeighting(StrEnum):
    """Where the composite score's signal weights come from."""

    FIXED = "fixed"  # `scan.signals` as written
    FITTED = "fitted"  # walk-forward from each signal's past information coefficient (`scan.fit`)


class SignalFitParams(_Strict):
    """How `scan.weights: fitted` turns each signal's past information coefficient into its weight."""

    window: int = Field(126, ge=5, le=2520, description="sessions of past ICs each fit reads (all strictly "
                        "before the sessions it weights)")
    min_sessions: int = Field(63, ge=5, description="a signal with fewer sessions of IC in the window keeps its "
                              "fixed weight")
    refit_every: int = Field(21, ge=1, le=252, description="weekdays between refits, counted from 2000-01-03 so "
                             "the live scan and a backtest refit on the same dates")
    shrink: float = Field(0.5, ge=0, le=1, description="share of the fixed weights kept: weight = shrink x fixed "
                          "+ (1 - shrink) x IC-proportional (0: the ICs alone, 1: the fixed weights)")

    @model_validator(mode="after")
    def _fits(self) -> SignalFitParams:
        if self.min_sessions > self.window:
            raise ValueError(f"min_sessions {self.min_sessions} > window {self.window}: no signal could be fitted")
        return self


class ScanParams(_Strict):
    """Signals, their weights, and the per-candidate strategy and maxdiff estimates."""

    lookback_days: int = Field(252, ge=20, le=5000, description="bars before the scan date used")
    min_history: int = Field(120, ge=20, description="fewer bars than this: excluded")
    max_gap_days: int = Field(5, ge=1, description="a gap longer than this many sessions: excluded")
    signals: dict[str, float] = Field(
        default_factory=lambda: {
            "momentum": 1.0,
            "trend": 1.0,
            "relative_volume": 0.5,
            "vol_adjusted_return": 1.0,
            "breakout": 0.75,
            "mean_reversion": 0.5,
        },
        description="signal name (or dotted path module:Class) -> weight in the composite score",
    )
    weights: SignalWeighting = Field(
        SignalWeighting.FIXED, description="fixed: the weights of scan.signals; fitted: each session's weights "
        "from each signal's information coefficient over past sessions (scan.fit), shrunk toward them")
    fit: SignalFitParams = Field(default_factory=SignalFitParams, description="the walk-forward fit of "
                                 "scan.weights: fitted")
    atr_period: int = Field(14, ge=2, description="sessions in the average true range (ATR) every exit is measured in")
    chunk_size: int = Field(1000, ge=10, description="symbols per chunk sent to the executor")
    workers: int = Field(0, ge=0, description="process pool size; 0 runs in this process")

    @field_validator("signals")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("at least one signal is needed")
        bad = {k: w for k, w in v.items() if w < 0}
        if bad:
            raise ValueError(f"weights must be >= 0, got {bad}")
        if sum(v.values()) <= 0:
            raise ValueError("the weights must not all be zero")
        return v


class SectorTiltParams(_Strict):
    """The sector tilt: a sector whose realised trades lost money with confidence over the trailing window
    gets a lower cap (walk-forward: only trades closed before the session count)."""

    enabled: bool = Field(False, description="off by default; on: lower the cap of a sector whose mean return "
                          "per trade over the window has a 95% interval (clustered by session) entirely below 0")
    window: int = Field(63, ge=5, le=2520, description="trailing sessions of closed trades judged")
    min_sessions: int = Field(10, ge=2, description="a sector traded on fewer sessions in the window is not judged")
    scale: float = Field(0.5, gt=0, lt=1, description="a tilted sector's cap = its cap x scale")


class TierBand(_Strict):
    """Scores at or above `min_score` (and below the next tier) get a weight in [weight_min, weight_max]."""

    min_score: float = Field(ge=0, le=100)
    weight_min: float = Fraction
    weight_max: float = Fraction

    @model_validator(mode="after")
    def _order(self) -> TierBand:
        if self.weight_min > self.weight_max:
            raise ValueError(
                f"weight_min {self.weight_min} > weight_max {self.weight_max}: min must not exceed max"
            )
        return self


class MarketCapParams(_Strict):
    """Tier thresholds (USD, lower bounds) and the share of the allocation each tier may take."""

    thresholds: dict[str, float] = Field(
        default_factory=lambda: {"mega": 200e9, "large": 10e9, "mid": 2e9, "small": 300e6},
        description="lower bound of each tier in USD; below small is micro",
    )
    bands: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {
            "mega": (0.10, 0.50),
            "large": (0.10, 0.60),
            "mid": (0.05, 0.40),
            "small": (0.0, 0.30),
            "micro": (0.0, 0.15),
        },
        description="tier -> [min, max] share of the directional allocation",
    )
    strict: bool = Field(
        False,
        description="false: the bands are preferences, met as far as the candidates allow (the pack comes "
        "as close as it can and the report says which band was missed and why); true: a band the candidates "
        "cannot meet stops the build (exit 3)",
    )

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: dict[str, float]) -> dict[str, float]:
        want = list(CAP_TIERS[:-1])
        if sorted(v) != sorted(want):
            raise ValueError(f"needs exactly the keys {want}, got {sorted(v)}")
        vals = [v[k] for k in want]
        if any(x <= 0 for x in vals) or vals != sorted(vals, reverse=True) or len(set(vals)) < 4:
            raise ValueError(f"must be positive and strictly decreasing mega > large > mid > small, got {v}")
        return v

    @field_validator("bands")
    @classmethod
    def _bands(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        unknown = sorted(set(v) - set(CAP_TIERS))
        if unknown:
            raise ValueError(f"unknown tier(s) {unknown}; tiers are {list(CAP_TIERS)}")
        for k, (lo, hi) in v.items():
            if not (0 <= lo <= hi <= 1):
                raise ValueError(f"{k}: [{lo}, {hi}] must satisfy 0 <= min <= max <= 1")
        full = {t: v.get(t, (0.0, 1.0)) for t in CAP_TIERS}
        if sum(lo for lo, _ in full.values()) > 1 + 1e-9:
            raise ValueError(f"the minimum shares sum to {sum(lo for lo, _ in full.values()):.2f} > 1")
        if sum(hi for _, hi in full.values()) < 1 - 1e-9:
            raise ValueError(f"the maximum shares sum to {sum(hi for _, hi in full.values()):.2f} < 1")
        return full

    def tier_of(self, market_cap: float) -> str:
        """The tier name for a market cap in USD."""
        for name in CAP_TIERS[:-1]:
            if market_cap >= self.thresholds[name]:
                return name
        return "micro"


class CalibrationParams(_Strict):
    """The walk-forward calibration of score → expected return and risk (`wolfkit.calibration`)."""

    refit_sessions: int = Field(
        21, ge=1, le=252, description="refit every this many weekdays (counted from a fixed date, so a backtest "
        "and a live build refit on the same days); the sessions in between use the last fit")
    window_sessions: int = Field(
        126, ge=5, le=1000, description="sessions of (score, open→close) pairs before the refit day the fit uses")
    min_observations: int = Field(
        5000, ge=1, description="fewer pairs than this: the calibration is not ready and the raw objective is used")
    bins: int = Field(10, ge=2, le=100, description="equal score bins over 0–100")
    shrinkage_obs: float = Field(
        5000.0, ge=0, description="each bin's mean return is shrunk toward zero by n / (n + shrinkage_obs), its "
        "volatility toward the pooled one by the same factor")
    method: Literal["isotonic", "binned"] = Field(
        "isotonic", description="isotonic: the bin means made non-decreasing in score; binned: as measured")


class PortfolioParams(_Strict):
    """The directional pack: how many names, how big, how spread."""

    min_score: float = Field(70, ge=0, le=100, description="below this a symbol is not a candidate")
    target_positions: int = Field(12, ge=1)
    min_positions: int = Field(10, ge=1)
    max_positions: int = Field(15, ge=1)
    position_min: float = Field(0.05, ge=0, le=1)
    position_max: float = Field(0.12, gt=0, le=1)
    cash_reserve: float = Field(
        0.05, ge=0, lt=1,
        description="share of equity the directional pack leaves in cash; the pack targets the rest, the target "
        "allocation 1 - cash_reserve (95% by default)")
    sector_cap: float = Field(0.30, gt=0, le=1)
    sector_caps: dict[str, float] = Field(default_factory=dict, description="per-sector overrides")
    sector_tilt: SectorTiltParams = Field(default_factory=lambda: SectorTiltParams(),
                                          description="lower a sector's cap after a confidently negative record")
    tiers: list[TierBand] = Field(
        default_factory=lambda: [
            TierBand(min_score=90, weight_min=0.10, weight_max=0.12),
            TierBand(min_score=75, weight_min=0.07, weight_max=0.09),
            TierBand(min_score=70, weight_min=0.05, weight_max=0.06),
        ]
    )
    market_cap: MarketCapParams = Field(default_factory=MarketCapParams)
    method: Literal["optimal", "greedy"] = "optimal"
    objective: Literal["calibrated", "raw"] = Field(
        "calibrated", description="what both methods maximise: calibrated (the walk-forward calibrated return of the "
        "score minus risk_aversion x its calibrated daily volatility) or raw (expected_return when every "
        "candidate has one, else score)")
    risk_aversion: float = Field(
        0.05, ge=0, le=10, description="calibrated objective: the penalty per unit of calibrated daily volatility")
    calibration: CalibrationParams = Field(default_factory=CalibrationParams)
    quarantine_bad_rows: bool = Field(
        False, description="bad opportunity rows: stop (false) or set aside and report (true)"
    )

    @field_validator("sector_caps")
    @classmethod
    def _caps(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: c for k, c in v.items() if not (0 < c <= 1)}
        if bad:
            raise ValueError(f"each cap must be in (0, 1], got {bad}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PortfolioParams:
        if not self.min_positions <= self.target_positions <= self.max_positions:
            raise ValueError(
                "min_positions <= target_positions <= max_positions must hold, got "
                f"{self.min_positions} / {self.target_positions} / {self.max_positions}"
            )
        if self.position_min > self.position_max:
            raise ValueError(f"position_min {self.position_min} > position_max {self.position_max}")
        target = self.target_allocation
        if self.max_positions * self.position_max < target - 1e-9:
            raise ValueError(
                f"max_positions x position_max = {self.max_positions * self.position_max:.2f} cannot "
                f"reach the target allocation {target:.2f} (1 - cash_reserve)"
            )
        if self.min_positions * self.position_min > target + 1e-9:
            raise ValueError(
                f"min_positions x position_min = {self.min_positions * self.position_min:.2f} exceeds "
                f"the target allocation {target:.2f} (1 - cash_reserve)"
            )
        scores = [t.min_score for t in self.tiers]
        if not self.tiers or scores != sorted(scores, reverse=True) or len(set(scores)) != len(scores):
            raise ValueError(f"tiers must be listed by strictly decreasing min_score, got {scores}")
        if min(scores) > self.min_score:
            raise ValueError(
                f"the lowest tier starts at {min(scores)} but min_score is {self.min_score}: "
                "scores in between would have no band"
            )
        for i, t in enumerate(self.tiers):
            if t.weight_min < self.position_min - 1e-12 or t.weight_max > self.position_max + 1e-12:
                raise ValueError(
                    f"tiers[{i}] (score >= {t.min_score}) band [{t.weight_min}, {t.weight_max}] lies "
                    f"outside the position bounds [{self.position_min}, {self.position_max}]"
                )
        return self

    @property
    def target_allocation(self) -> float:
        """The share of equity the directional pack aims to hold, 1 - `cash_reserve`: the one definition
        every step (candidates, exact, greedy, explanations, packing, orders, backtest) uses."""
        return 1 - self.cash_reserve

    def band_for(self, score: float) -> TierBand | None:
        """The tier band for a score, or None below the lowest tier."""
        for t in self.tiers:
            if score >= t.min_score:
                return t
        return None

    def cap_for(self, sector: str) -> float:
        return self.sector_caps.get(sector, self.sector_cap)


class TimeShare(_Strict):
    """From `start` (ET) until the next entry, maxdiff may use `share` of its budget."""

    start: time
    share: float = Fraction


class LeverageParams(_Strict):
    """Leverage buckets as multiples of equity, and the maxdiff layer's time-of-day shares."""

    directional_max: float = Field(
        1.3, gt=0, le=4, description="directional bucket on a margin account, x equity (a cash account: the "
        "target allocation)")
    total_max: float = Field(
        1.5, gt=0, le=4, description="total bucket (directional + maxdiff) on a margin account, x equity (a cash "
        "account: the target allocation)")
    buying_power_multiple: float = Field(
        2.0, ge=1, le=4,
        description="the account's buying power as a multiple of equity when none is given (build, premarket and "
        "tune without a buying power, replay, every backtest session): 2 is a Reg-T margin account, the account "
        "the buckets above assume; 1 is a cash account (no margin, no short sales, both buckets the target "
        "allocation). A buying power that is given always wins: above equity is margin, at or below equity cash",
    )
    max_positions_per_symbol: int = Field(2, ge=1, le=10)
    maxdiff_time_shares: list[TimeShare] = Field(
        default_factory=lambda: [
            TimeShare(start=time(9, 30), share=0.2),
            TimeShare(start=time(11, 0), share=0.4),
            TimeShare(start=time(14, 0), share=0.6),
        ],
        description="the maxdiff layer's budget by time of day (ET): share x (total bucket - directional "
        "committed), the room the directional layer leaves (Params.maxdiff_budget; build, engine and status alike)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> LeverageParams:
        if self.directional_max > self.total_max:
            raise ValueError(
                f"directional_max {self.directional_max} > total_max {self.total_max}: "
                "the total bucket must contain the directional one"
            )
        starts = [s.start for s in self.maxdiff_time_shares]
        if not starts:
            raise ValueError("maxdiff_time_shares needs at least one entry")
        if starts != sorted(starts) or len(set(starts)) != len(starts):
            raise ValueError(f"maxdiff_time_shares starts must be strictly increasing, got {starts}")
        if starts[0] > time(9, 30) or starts[-1] >= time(16, 0):
            raise ValueError(
                "maxdiff_time_shares must start at or before 09:30 and every start must be before 16:00"
            )
        return self

    def maxdiff_share_at(self, t: time) -> float:
        """The maxdiff budget share in force at wall-clock time `t` (ET)."""
        share = self.maxdiff_time_shares[0].share
        for s in self.maxdiff_time_shares:
            if t >= s.start:
                share = s.share
        return share


class SizingParams(_Strict):
    """How a weight is placed inside its tier band, and how maxdiff plans are sized."""

    weight_rule: Literal["score", "kelly"] = Field(
        "score", description="score: linear in score within the band; kelly: leverage-aware Kelly"
    )
    kelly_fraction: float = Field(0.5, gt=0, le=1, description="fractional Kelly cap")
    maxdiff_rule: Literal["dynamic", "kelly"] = Field(
        "dynamic", description="dynamic: room / active plans; kelly: edge / variance of the maxdiff trade's own "
        "returns (maxdiff_avg_return, maxdiff_return_std)"
    )
    maxdiff_max_active: int = Field(15, ge=1, description="plans listening at once; the rest queue")


class RiskParams(_Strict):
    """Risk and liquidity rules of the build: floors a name must pass to be a candidate, caps that bound
    each position's weight, and the maxdiff layer counted in the market-cap mix. A floor of 0 and a cap
    of null turn that rule off. The scan writes what the rules read (`price`, `adv_usd`, `volatility`)."""

    min_price: float = Field(
        5.0, ge=0, description="USD: a name priced below this is not a candidate (no penny stocks); 0: off")
    min_adv_usd: float = Field(
        5_000_000.0, ge=0,
        description="USD: a name whose average daily dollar volume (adv_usd, over adv_days) is below this is not "
        "a candidate; 0: off")
    adv_days: int = Field(20, ge=1, le=252, description="sessions the scan averages the dollar volume over (adv_usd)")
    max_adv_share: float | None = Field(
        0.01, gt=0, le=1,
        description="an order may buy at most this share of the name's average daily dollar volume: caps the "
        "order's shares and bounds the weight at max_adv_share x adv_usd / equity; null: off")
    max_position_risk: float | None = Field(
        0.006, gt=0, le=1,
        description="a position's risk, weight x daily volatility, as a share of equity, is at most this: bounds "
        "the weight at max_position_risk / volatility; null: off")
    volatility_days: int = Field(
        60, ge=5, le=252, description="sessions of daily close-to-close returns behind `volatility` (its std)")
    maxdiff_in_cap_bands: bool = Field(
        True, description="maxdiff fills count in their market-cap tier: the packer keeps directional + maxdiff "
        "of each tier under the tier's band maximum")
    var_level: float = Field(0.95, gt=0.5, lt=1, description="confidence of the report's 1-day value at risk")
    cluster_min_correlation: float = Field(
        0.5, ge=0, le=1, description="the report's correlation clusters: names whose average correlation (average "
        "linkage) is at least this join one cluster")


class ExecutionParams(_Strict):
    """How the batch reaches the broker."""

    broker: Literal["sim", "paper", "live"] = "sim"
    order_type: Literal["market", "limit"] = "market"
    time_in_force: Literal["day", "opg", "gtc"] = "day"
    market_buffer: float = Field(0.03, ge=0, le=0.5, description="budget buffer on market buys")
    limit_offset: float = Field(0.002, ge=0, le=0.1, description="limit orders: above ask by this")
    max_concurrency: int = Field(4, ge=1, le=32)
    rate_limit_per_minute: int = Field(
        180, ge=1, le=10000, description="requests in any 60 s to a broker that limits them (Alpaca: 200); "
        "the in-process simulator has no limit unless it is given one, so it is not gated")
    request_timeout: float = Field(10.0, gt=0, le=120)
    max_attempts: int = Field(5, ge=1, le=20)
    ledger_path: str = Field(
        "outputs/ledger.sqlite", description="the SQLite ledger; a relative path is relative to the project "
        "(the folder holding parameters/ or pyproject.toml), whatever the working directory")
    min_free_disk_mb: float = Field(
        50.0, ge=0, allow_inf_nan=False,
        description="refuse to execute (exit 2) when the ledger's disk has less free space than this, in MB"
    )
    lock_wait_seconds: float = Field(
        10.0, ge=0, le=3600, allow_inf_nan=False,
        description="a second executor for the same account and session waits this long for the run lock, "
                    "then exits 2 naming the holder"
    )


class MaxdiffParams(_Strict):
    """The maxdiff layer: which plans qualify, and the limit-price ramp."""

    enabled: bool = True
    min_avg_return: float = Field(0.0, description="plans below this average return are dropped")
    buy_ramp: tuple[float, float] = Field(
        (1.001, 1.005), description="buy limit = predicted_low x [start, end]"
    )
    sell_ramp: tuple[float, float] = Field(
        (0.999, 0.995), description="sell limit = predicted_high x [start, end]"
    )
    ramp_minutes: int = Field(60, ge=1, le=390, description="minutes to go from start to end")
    ramp_step_minutes: int = Field(10, ge=1, le=390, description="replace the order this often")
    expire_minutes: int = Field(
        120, ge=1, le=390, description="a listening plan with no fill after this long expires; the next rotates in"
    )

    @model_validator(mode="after")
    def _ramps(self) -> MaxdiffParams:
        b0, b1 = self.buy_ramp
        s0, s1 = self.sell_ramp
        if not (1 <= b0 <= b1 < 1.1):
            raise ValueError(f"buy_ramp must satisfy 1 <= start <= end < 1.1, got {self.buy_ramp}")
        if not (0.9 < s1 <= s0 <= 1):
            raise ValueError(f"sell_ramp must satisfy 0.9 < end <= start <= 1, got {self.sell_ramp}")
        return self


class IntradayParams(_Strict):
    """The two-layer engine during the session."""

    close_directional_eod: bool = Field(
        True, description="flatten directional positions at the close (true), or carry them overnight (false): the "
        "next morning's plan, built with `--broker`, is then sized against what is held (sells what left the pack, "
        "trims or tops up the rest; `wolfkit.rebalance`), and the backtest trades only those deltas at the open")
    poll_seconds: float = Field(5.0, gt=0)
    reconcile_seconds: float = Field(
        30.0, gt=0, description="--mode stream: seconds between REST reconciliations (each re-reads every "
        "order of the engine, one request per working order): the trade-update stream loses what is sent "
        "while its socket reconnects, so a lost fill is booked at most this late"
    )
    flatten_minutes: int = Field(
        10, ge=1, le=120, description="minutes before the close when maxdiff (and, per close_directional_eod, "
        "directional) positions are closed at market and working entries cancelled"
    )


class StopRule(StrEnum):
    """Where a directional position's stop sits (`exits.stop_rule`)."""

    FIXED = "fixed"  # each strategy's own stop: takeprofit stop_loss_atr x ATR below, highlow the predicted low
    ATR = "atr"  # every strategy: stop_loss_atr x ATR below the entry
    TRAILING = "trailing"  # every strategy: trail_atr x ATR below the highest price since the entry


class ExitParams(_Strict):
    """How directional positions leave: a target for every strategy, a stop rule, a time stop
    (`wolfkit.exits` computes the levels; the plan carries them per order)."""

    take_profit_atr: float = Field(
        2.0, gt=0, description="target of takeprofit and simple trades: the entry + this x ATR (highlow's target "
        "is its predicted high)")
    stop_rule: StopRule = Field(
        StopRule.FIXED, description="fixed: each strategy's own stop (takeprofit: stop_loss_atr x ATR below the "
        "entry, highlow: the predicted low, simple: none); atr: stop_loss_atr x ATR below the entry for every "
        "strategy; trailing: trail_atr x ATR below the highest price since the entry, only ever raised")
    stop_loss_atr: float = Field(
        1.0, gt=0, description="ATR multiples below the entry: takeprofit's stop (fixed), every stop (atr)")
    trail_atr: float = Field(
        1.0, gt=0, description="stop_rule trailing: the trail in ATR multiples (the plan carries it in USD as "
        "trail_amount); an ATR scales with each symbol's own volatility, a fixed percent would not")
    time_stop_minutes: int | None = Field(
        None, ge=1, le=390, description="close a directional position at market this many minutes after the "
        "session's open; null: no time stop (the close rule applies)")


class BacktestParams(_Strict):
    """The research backtester: account, trading costs and the honesty checks (`wolfkit backtest`).

    Each session's buying power is `leverage.buying_power_multiple` x equity, as in every other command."""

    equity: float = Field(100_000.0, gt=0, description="starting equity in USD (--equity overrides it)")
    slippage_bps: float = Field(
        2.0, ge=0, le=500, description="market fills (open, close, stops) are this many bp worse than the bar price"
    )
    fee_per_share: float = Field(0.0, ge=0, description="USD per share on every fill")
    fee_bps: float = Field(0.0, ge=0, le=500, description="bp of the notional on every fill")
    min_fee: float = Field(0.0, ge=0, description="USD: the least a fill costs when it costs anything")
    minute_bars: bool = Field(
        True, description="resolve the order of touches from minute bars when the data source has them"
    )


class ReportParams(_Strict):
    """What the pre-market report warns about and how long a table may run before it is summarised
    (the full list goes to a CSV beside the report). The flags are not the builder's rules (`risk`): the
    rules keep such names out; the flags catch what a plan holds when a rule is off or its column missing."""

    warn_price_below: float = Field(
        5.0, ge=0, description="USD: an order in a stock priced below this is flagged (penny stock)"
    )
    warn_dollar_volume_below: float = Field(
        5_000_000.0, ge=0, description="USD: a stock whose average daily dollar volume (opportunities column "
        "`adv_usd`, when the scan provides it) is below this is flagged as illiquid"
    )
    warn_volume_share_above: float = Field(
        0.01, gt=0, le=1, description="an order worth more than this share of the stock's average daily dollar "
        "volume is flagged"
    )
    table_rows: int = Field(
        25, ge=5, le=1000, description="longer tables show their first rows and a summary; the full list is "
        "written to a CSV beside the report"
    )


class AccountKind(StrEnum):
    """Margin or cash: read from buying power against equity, never from a separate switch."""

    MARGIN = "margin"  # buying power above equity: both leverage buckets apply, sell-only maxdiff plans allowed
    CASH = "cash"  # buying power at or below equity: both buckets are the target allocation, no short sales


@dataclass(frozen=True)
class AccountLimits:
    """The account a plan is sized for and the two leverage buckets it allows (USD); made only by
    `Params.account`, so every command reads "no buying power given" the same way."""

    equity: float
    buying_power: float
    kind: AccountKind
    directional_bucket: float
    total_bucket: float

    @property
    def margin(self) -> bool:
        return self.kind is AccountKind.MARGIN

    @property
    def multiplier(self) -> float:
        """Buying power as a multiple of equity (at least 1), as the orders file records it."""
        return max(1.0, round(self.buying_power / self.equity, 4))


class Params(_Strict):
    """Every knob of a wolfkit run."""

    name: str = "default"
    data: DataParams = Field(default_factory=DataParams)
    scan: ScanParams = Field(default_factory=ScanParams)
    portfolio: PortfolioParams = Field(default_factory=PortfolioParams)
    leverage: LeverageParams = Field(default_factory=LeverageParams)
    sizing: SizingParams = Field(default_factory=SizingParams)
    risk: RiskParams = Field(default_factory=RiskParams)
    execution: ExecutionParams = Field(default_factory=ExecutionParams)
    maxdiff: MaxdiffParams = Field(default_factory=MaxdiffParams)
    intraday: IntradayParams = Field(default_factory=IntradayParams)
    exits: ExitParams = Field(default_factory=ExitParams)
    backtest: BacktestParams = Field(default_factory=BacktestParams)
    report: ReportParams = Field(default_factory=ReportParams)

    def account(self, equity: float, buying_power: float | None = None) -> AccountLimits:
        """The account for `equity` and an optional `buying_power` (USD), by the one rule every command
        follows: no buying power given means `leverage.buying_power_multiple` x equity; buying power above
        equity is a margin account (buckets `directional_max` and `total_max` x equity, each capped at the
        buying power), at or below equity a cash account (both buckets the target allocation x equity,
        capped at the buying power)."""
        if not (math.isfinite(equity) and equity > 0):
            raise BadInputError(f"equity must be a positive number of USD, got {equity}")
        if buying_power is not None and not (math.isfinite(buying_power) and buying_power > 0):
            raise BadInputError(f"buying power must be a positive number of USD, got {buying_power}")
        lev = self.leverage
        bp = lev.buying_power_multiple * equity if buying_power is None else float(buying_power)
        if bp > equity:
            return AccountLimits(equity, bp, AccountKind.MARGIN, min(lev.directional_max * equity, bp),
                                 min(lev.total_max * equity, bp))
        cash = min(self.portfolio.target_allocation * equity, bp)
        return AccountLimits(equity, bp, AccountKind.CASH, cash, cash)

    def maxdiff_budget(self, equity: float, directional_committed: float, t: time,
                       buying_power: float | None = None) -> float:
        """USD the maxdiff layer may commit at wall-clock time `t` (ET), the one rule of build, engine and
        status: its time-of-day share (`leverage.maxdiff_share_at`) of the ROOM the directional layer leaves
        in the total bucket, share(t) x (total bucket - directional committed). A share of the room, not of
        the whole bucket, so it can never displace directional exposure and keeps most of the directional
        bucket's headroom free early in the day; a directional exit grows the room, and the share of it."""
        total = self.account(equity, buying_power).total_bucket
        return self.leverage.maxdiff_share_at(t) * max(0.0, total - directional_committed)

    def with_changes(self, changes: Mapping[str, Any], source: str = "parameter changes") -> Params:
        """A new parameter set: `changes`, nested as in the YAML (``{"portfolio": {"sector_cap": 0.25}}``),
        merged over this one and validated again like a loaded file (a bare `model_copy(update=...)` would
        skip validation). This set is frozen and stays as it was."""
        return params_from_dict(_merge(self.model_dump(), dict(changes)), source)

    def digest(self) -> str:
        """A short stable hash of the resolved parameters (recorded in orders and reports)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


MAX_YAML_DEPTH = 32  # the deepest real parameter is 4 levels down; far deeper is a broken or hostile file


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping and nesting past MAX_YAML_DEPTH
    (PyYAML would keep the last duplicate silently, and recurse until Python's stack runs out)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given on line {first}); keep one", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_strict_yaml(path: Path, what: str = "parameter file") -> Any:
    """A YAML file read as UTF-8 with the strict loader (no duplicate keys, bounded nesting); every
    problem is a `BadInputError` naming the file, the line and the fix. An empty file reads as {}."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadInputError(f"{path}: byte {e.start} is not UTF-8 text; save the {what} as UTF-8") from None
    try:
        return yaml.load(text, Loader=_StrictLoader) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise BadInputError(f"{path}:{where}: not valid YAML ({getattr(e, 'problem', e)}); fix the syntax") from None


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise BadInputError(f"{path}: 'extends' forms a loop through {[str(p) for p in seen]}")
    if not path.is_file():
        raise BadInputError(f"{path}: parameter file not found; pass an existing file such as parameters/demo.yaml")
    raw = read_strict_yaml(path)
    if not isinstance(raw, dict):
        raise BadInputError(f"{path}: expected a mapping of sections (data:, scan:, …), got {type(raw).__name__}")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str) or not parent.strip():
        raise BadInputError(
            f"{path}: extends (given {parent!r}): must be the name of another parameter file, e.g. "
            "`extends: default.yaml` (resolved beside this file)")
    return _merge(_read_yaml((path.parent / parent).resolve(), (*seen, path)), raw)


MOVED_KEYS = {  # old key path -> where it lives now, so an older file fails with the fix, not "a typo?"
    "backtest.buying_power_multiple": "leverage.buying_power_multiple (it now sets the account of every command)",
}

REMOVED_KEYS = {  # old key path -> why it went, so an older file fails with the fix
    "execution.max_plan_age_days": "a plan now executes only in its own session, see docs/operations.md",
}


def _describe(err: ErrorDetails, raw: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        if loc in MOVED_KEYS:
            return f"{loc}: moved to {MOVED_KEYS[loc]}; rename the key"
        if loc in REMOVED_KEYS:
            return f"{loc}: removed ({REMOVED_KEYS[loc]}); delete the line"
        return f"{loc}: unknown key (a typo?); remove it or use one of the documented keys"
    given: Any = raw
    for p in err["loc"]:
        try:
            given = given[p]
        except (KeyError, IndexError, TypeError):
            given = "<missing>"
            break
    msg = err["msg"].removeprefix("Value error, ")
    shown = "" if isinstance(given, dict) else f" (given {given!r})"
    return f"{loc}{shown}: {msg}"


def params_from_dict(raw: dict[str, Any], source: str = "<parameters>") -> Params:
    """Validate a mapping into Params; errors name `source`, the key path, what was given and what is allowed."""
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        lines = [_describe(err, raw) for err in e.errors()]
        raise BadInputError(f"{source}: invalid parameters:\n  " + "\n  ".join(lines)) from None


def load_params(path: str | Path) -> Params:
    """Load and validate a parameter file (following `extends:`)."""
    p = Path(path)
    return params_from_dict(_read_yaml(p.resolve()), str(path))


# ---- the project: where relative paths in parameters and notebooks point ---------------------------

PROJECT_ENV = "WOLFKIT_PROJECT"  # the project folder, for a process whose working directory is elsewhere


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: the working directory) holding `parameters/`
    or `pyproject.toml`; `start` itself when there is none. Without `start`, `WOLFKIT_PROJECT` when set:
    a scheduler that runs a notebook from its own staging folder (jupyter-scheduler) names the project so.

    Relative paths (the ledger, notebook inputs) resolve against it, so a command or a notebook run
    from `notebooks/` or any other subfolder reads and writes the same files as one run from the root.
    """
    if start is None and os.environ.get(PROJECT_ENV, "").strip():
        return Path(os.environ[PROJECT_ENV].strip()).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "parameters").is_dir() or (d / "pyproject.toml").is_file():
            return d
    return here


def project_path(path: str | Path) -> Path:
    """An absolute path: `path` as given when absolute (after `~`), else against `project_root()`."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p
