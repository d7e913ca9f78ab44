"""The ledger: one SQLite file that remembers every run, order, attempt, fill and plan, keyed by account.

A package by responsibility: `storage` (file checks, the connection, errors), `schema` (tables and
migrations), `records` (states, event kinds, typed rows), `history` (events, fills, maxdiff plans,
engine state, the execution log) and `book` (`Ledger`: runs and orders). The public names are here.
"""

from __future__ import annotations

import shutil  # noqa: F401  (tests reach `wolfkit.ledger.shutil.disk_usage`)
from datetime import date

from wolfkit.ledger.book import Ledger
from wolfkit.ledger.history import LOG_SCHEMA
from wolfkit.ledger.records import (
    UNKNOWN_ACCOUNT,
    EventKind,
    LedgerError,
    LedgerEvent,
    LedgerFull,
    LedgerOrder,
    OrderState,
    PlanRow,
    Sizing,
)
from wolfkit.ledger.schema import APPLICATION_ID, SCHEMA_VERSION
from wolfkit.ledger.storage import connect as _connect
from wolfkit.ledger.storage import marker_path

__all__ = [
    "APPLICATION_ID", "LOG_SCHEMA", "SCHEMA_VERSION", "UNKNOWN_ACCOUNT", "EventKind", "Ledger", "LedgerError",
    "LedgerEvent", "LedgerFull", "LedgerOrder", "OrderState", "PlanRow", "Sizing", "_connect", "load_engine_state",
    "marker_path", "save_engine_state",
]


def save_engine_state(ledger: Ledger, run_id: str, session: date | str, state_json: str) -> None:
    """Store (replace) the engine state of a run on the ledger view's account."""
    ledger.save_engine_state(run_id, session, state_json)


def load_engine_state(ledger: Ledger, run_id: str | None = None) -> str | None:
    """The saved engine state of `run_id` (on the view's account), or of the most recently updated run."""
    return ledger.load_engine_state(run_id)
