"""One run's identity and files: its id, the day folder `outputs/<date>/`, export paths that never
overwrite an earlier run's, and the records the report sections take (`RunContext`, `ExecutionRun`).

The notebook runner (`wolfkit.notebooks`), the report sections (`wolfkit.report`) and the backtest all
use these, so they live below all three.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wolfkit.config import Params
    from wolfkit.execute import ExecutionReport
    from wolfkit.orders import OrderPlan


def new_run_id(kind: str, session: date) -> str:
    """A fresh run id: session, kind and 8 random hex digits (a re-run gets new client order ids)."""
    return f"{session:%Y%m%d}-{kind[:3]}-{secrets.token_hex(4)}"


def day_dir(outputs_dir: str | Path, session: date) -> Path:
    """The per-day folder `outputs/<YYYY-MM-DD>/`."""
    return Path(outputs_dir) / session.isoformat()


def unique_path(path: str | Path) -> Path:
    """`path` if it is free, else the same name with `.2`, `.3`, … before the extension.

    Exports go through this so an interactive re-run never overwrites an earlier run's files.
    """
    p = Path(path)
    if not p.exists():
        return p
    stem, ext = p.name.split(".", 1) if "." in p.name else (p.name, "")
    n = 2
    while True:
        q = p.with_name(f"{stem}.{n}.{ext}" if ext else f"{stem}.{n}")
        if not q.exists():
            return q
        n += 1


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

    def export_path(self, name: str) -> Path:
        """`outputs/<date>/<stem><suffix>.<ext>`, never an existing file."""
        stem, ext = name.split(".", 1)
        self.day_dir.mkdir(parents=True, exist_ok=True)
        return unique_path(self.day_dir / f"{stem}{self.suffix}.{ext}")


@dataclass(frozen=True)
class ExecutionRun:
    """An executed orders file: the plan, the executor's report, where the ledger and the log are."""

    plan: OrderPlan
    report: ExecutionReport
    ledger_path: Path
    log_path: Path
