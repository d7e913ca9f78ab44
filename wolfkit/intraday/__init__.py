"""The intraday two-layer engine: the directional pack and the parallel maxdiff layer, all session long.

Leverage freed by a directional exit would sit idle for hours; this engine puts that room to work
with limit orders at the predicted daily extremes (the *maxdiff* layer) while the directional layer
always comes first. By responsibility:

- `state`: the engine's state (`EngineState`, legs, plans, slots) and its transition tables;
- `decisions`: what each layer wants now, from state and market (budget, ramp, exits, rotation);
- `tracking`: order tracking — book fills, adopt, reconcile, send, replace, cancel — through the one
  submission path (`wolfkit.broker.submission`);
- `engine`: `IntradayEngine`, which steps them (the same code in a replay and live);
- `live`: the poll and stream runners and `run_live`, the loop `wolfkit intraday` runs.
"""

from wolfkit.intraday.decisions import ramp_price
from wolfkit.intraday.engine import IntradayEngine
from wolfkit.intraday.live import (
    FeedMode,
    LiveRun,
    StreamSession,
    feed_for,
    market_from_quotes,
    open_engine,
    run_live,
    run_polling,
    run_streaming,
    sim_market_feed,
    status_line,
    stop_time,
    wall_clock,
)
from wolfkit.intraday.state import (
    LEG_TRANSITIONS,
    PLAN_TRANSITIONS,
    DirectionalPosition,
    EngineState,
    Exposure,
    FillRecord,
    IllegalTransition,
    Leg,
    LegEvent,
    LegState,
    Market,
    MaxdiffPlanState,
    Purpose,
    Slot,
    exposure_of,
)
from wolfkit.intraday.tracking import PLAN_LOOKBACK

__all__ = [
    "LEG_TRANSITIONS", "PLAN_LOOKBACK", "PLAN_TRANSITIONS", "DirectionalPosition", "EngineState", "Exposure",
    "FeedMode", "FillRecord", "IllegalTransition", "IntradayEngine", "Leg", "LegEvent", "LegState", "LiveRun", "Market",
    "MaxdiffPlanState", "Purpose", "Slot", "StreamSession", "exposure_of", "feed_for", "market_from_quotes",
    "open_engine", "ramp_price", "run_live", "run_polling", "run_streaming", "sim_market_feed", "status_line",
    "stop_time", "wall_clock",
]
