"""One run's identity: its id, where its exports go (through `wolfkit.day_folder`, so an earlier run's
files are never overwritten), and the records the report sections take (`RunContext`, `ExecutionRun`).

The notebook runner (`wolfkit.notebooks`), the report sections (`wolfkit.report`) and the backtest all
use these, so they live below all three.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wolfkit.day_folder import claim_file, day_dir

if TYPE_CHECKING:
    from wolfkit.config import Params
    from wolfkit.execute import ExecutionReport
    from wolfkit.orders import OrderPlan


def new_run_id(kind: str, session: date) -> str:
    """A fresh run id: session, kind and 8 random hex digits (a re-run gets new client order ids)."""
    return f"{session:%Y%m%d}-{kind[:3]}-{secrets.token_hex(4)}"


@dataclass
class RunContext:
    """Who, what and where of one notebook run; later cells pass it to `wolfkit.report` sections."""

    kind: str
    session: date
    params_path: Path
    params: Params
    run_id: str
    suffix: str
    outputs_dir: Path
    forced: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def day_dir(self) -> Path:
        return day_dir(self.outputs_dir, self.session)

    @property
    def run_number(self) -> int:
        """1 for the day's first run of this notebook, 2 for the second (suffix ".2"), …"""
        return int(self.suffix.lstrip(".") or 1)

    def export_path(self, name: str, companions: Sequence[str] = ()) -> Path:
        """`outputs/<date>/<stem><suffix>.<ext>` (this run's number), or the next free number when a
        command already took that one: never an existing file (`claim_file`)."""
        return claim_file(self.day_dir / name, companions=companions, start=self.run_number)


@dataclass(frozen=True)
class ExecutionRun:
    """An executed orders file: the plan, the executor's report, where the ledger and the log are."""

    plan: OrderPlan
    report: ExecutionReport
    ledger_path: Path
    log_path: Path
