"""What an account holds when a plan is built: the positions `wolfkit build/premarket --broker` sizes against.

With positions carried overnight (`intraday.close_directional_eod: false`) the builder nets the new pack
against what is held (`wolfkit.rebalance`). The positions come from the broker account the plan will
trade — the simulated account beside the orders file (`sim_broker.json` in the day folder; none there
means nothing held) or Alpaca paper/live — read once here, at the edge, and written into the orders
file (`holdings`), so the executor can refuse the plan when the account no longer holds them. Without
`--broker` nothing is read and the plan is built as if the account were flat, as before.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from wolfkit.broker.account import sim_account
from wolfkit.broker.base import Position
from wolfkit.broker.gate import broker_kind_for
from wolfkit.config import Params
from wolfkit.rebalance import Holding, Holdings


def _holding(p: Position) -> Holding:
    mark = abs(p.market_value / p.qty) if p.qty and p.market_value else p.avg_entry_price
    return Holding(symbol=p.symbol, qty=p.qty, price=round(float(mark), 4))


def read_holdings(broker: str, params: Params, state_dir: Path) -> Holdings:
    """The positions of the account `broker` (sim | paper | live) names, read now.

    `sim`: the simulated account kept in `state_dir/sim_broker.json` (the one `wolfkit execute --broker
    sim` trades for that day folder); no file there is an account that holds nothing. `paper`/`live`:
    Alpaca, keys from the environment, through the live gate (reading the live account needs
    `execution.broker: live`, as trading it does). Nothing is sent.
    """
    kind = broker_kind_for(params, broker, live=broker == "live")
    read_at = datetime.now(timezone.utc)
    if kind == "sim":
        from wolfkit.broker.sim import SimBroker
        from wolfkit.execute import SIM_STATE

        state = state_dir / SIM_STATE
        key = sim_account(state)
        positions = SimBroker.load(state).positions() if state.is_file() else []
    else:
        from wolfkit.broker.alpaca import AlpacaBroker
        from wolfkit.execute import broker_account

        alpaca = AlpacaBroker(paper=kind == "paper", timeout=params.execution.request_timeout)
        key, _ = broker_account(kind, alpaca, state_dir, params.execution.max_attempts)
        positions = alpaca.positions()
    return Holdings(account=str(key), read_at=read_at,
                    positions=[_holding(p) for p in sorted(positions, key=lambda p: p.symbol) if p.qty])
