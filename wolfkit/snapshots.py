"""End-of-day snapshots of the account, kept in the ledger file, and the daily P&L history built from them.

Why: positions and fills say where the account stands now; a trader also wants to see how each day
went. One snapshot per account and session (the last one taken that day wins): equity, cash, realised
and unrealised P&L by layer (cumulative since the ledger's first fill, by the cost rule of
`wolfkit.pnl`), gross exposure by layer at the marks, and how many positions were open. `wolfkit
status --snapshot` (the after-the-close job), the end of `wolfkit intraday` and of `wolfkit replay`
write one; `wolfkit status --history` and the status screen read them.

A day's P&L is the change in cumulative P&L from the previous snapshot; the first snapshot's day P&L
is everything since the ledger's first fill (`DayPnL.first`).

Storage: table `daily_snapshots` in the same SQLite file, through `Ledger.connection` (the ledger's
lock and storage guard), created on first use.
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
from pydantic import BaseModel, ConfigDict

from wolfkit.ledger import Ledger

_SCHEMA = """
CREATE TABLE IF NOT EXISTS daily_snapshots (
    account TEXT NOT NULL, session TEXT NOT NULL, taken_at TEXT NOT NULL, source TEXT NOT NULL,
    equity REAL NOT NULL, cash REAL NOT NULL,
    realized_directional REAL NOT NULL, realized_maxdiff REAL NOT NULL,
    unrealized_directional REAL NOT NULL, unrealized_maxdiff REAL NOT NULL,
    gross_directional REAL NOT NULL, gross_maxdiff REAL NOT NULL, positions INTEGER NOT NULL,
    PRIMARY KEY (account, session)
)
"""

_FIELDS = ("account", "session", "taken_at", "source", "equity", "cash", "realized_directional", "realized_maxdiff",
           "unrealized_directional", "unrealized_maxdiff", "gross_directional", "gross_maxdiff", "positions")


class DailySnapshot(BaseModel):
    """The account at the end of one session (USD; P&L cumulative since the ledger's first fill)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str  # the broker account the numbers are for (`sim`, `alpaca-paper`, …; `replay` for a replay)
    session: date
    taken_at: datetime
    source: str  # where positions came from: `broker` or `ledger`
    equity: float
    cash: float
    realized_directional: float
    realized_maxdiff: float
    unrealized_directional: float
    unrealized_maxdiff: float
    gross_directional: float  # Σ |qty| × mark of the layer's open positions
    gross_maxdiff: float
    positions: int  # open (symbol, layer) positions

    @property
    def pnl_directional(self) -> float:
        return self.realized_directional + self.unrealized_directional

    @property
    def pnl_maxdiff(self) -> float:
        return self.realized_maxdiff + self.unrealized_maxdiff

    @property
    def pnl(self) -> float:
        return self.pnl_directional + self.pnl_maxdiff


def record_snapshot(ledger: Ledger, snap: DailySnapshot) -> None:
    """Store the snapshot, replacing an earlier one of the same account and session."""
    values = [snap.model_dump()[k] for k in _FIELDS]
    values = [v.isoformat() if isinstance(v, (date, datetime)) else v for v in values]
    with ledger.connection("recording the daily snapshot") as db:
        db.execute(_SCHEMA)
        db.execute(f"INSERT OR REPLACE INTO daily_snapshots ({', '.join(_FIELDS)}) "
                   f"VALUES ({', '.join('?' for _ in _FIELDS)})", values)


def load_snapshots(ledger: Ledger, account: str | None = None, days: int | None = None) -> list[DailySnapshot]:
    """The snapshots of `account` (every account when None), oldest first; the last `days` sessions only."""
    sql, args = f"SELECT {', '.join(_FIELDS)} FROM daily_snapshots", []
    if account is not None:
        sql, args = sql + " WHERE account=?", [account]
    with ledger.connection("reading the daily snapshots") as db:
        db.execute(_SCHEMA)
        rows = db.execute(sql + " ORDER BY session, account", args).fetchall()
    snaps = [DailySnapshot(**dict(zip(_FIELDS, r))) for r in rows]
    if days is not None:
        keep = sorted({s.session for s in snaps})[-days:] if days > 0 else []
        snaps = [s for s in snaps if s.session in set(keep)]
    return snaps


HISTORY_COLUMNS = ["session", "account", "equity", "day_pnl", "day_directional", "day_maxdiff", "cum_pnl",
                   "gross_directional", "gross_maxdiff", "positions", "first"]


def daily_history(snaps: list[DailySnapshot]) -> pd.DataFrame:
    """One row per snapshot (HISTORY_COLUMNS): the day's P&L (total and by layer) is the change in
    cumulative P&L from the account's previous snapshot; `first` marks an account's first snapshot,
    whose day P&L is everything since the ledger's first fill. Gross exposure is a multiple of equity."""
    rows: list[tuple] = []
    prev: dict[str, DailySnapshot] = {}
    for s in sorted(snaps, key=lambda x: (x.account, x.session)):
        p = prev.get(s.account)
        d_dir = s.pnl_directional - (p.pnl_directional if p else 0.0)
        d_md = s.pnl_maxdiff - (p.pnl_maxdiff if p else 0.0)
        eq = s.equity if s.equity > 0 else float("nan")
        rows.append((s.session, s.account, s.equity, d_dir + d_md, d_dir, d_md, s.pnl, s.gross_directional / eq,
                     s.gross_maxdiff / eq, s.positions, p is None))
        prev[s.account] = s
    frame = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    return frame.sort_values(["session", "account"], kind="stable").reset_index(drop=True)


def format_history(frame: pd.DataFrame) -> str:
    """The daily P&L history as plain text, one line per session."""
    if frame.empty:
        return ("(no daily snapshots yet: `wolfkit status --snapshot` after the close records one; "
                "`wolfkit intraday` and `wolfkit replay` record one when they end)\n")
    head = (f"{'session':10}  {'account':14} {'equity':>12} {'day P&L':>11} {'directional':>12} {'maxdiff':>10} "
            f"{'cumulative':>11} {'gross dir':>9} {'gross md':>9} {'pos':>4}")
    lines = [head]
    for r in frame.itertuples():
        mark = "*" if r.first else " "
        lines.append(f"{r.session!s:10}  {r.account[:14]:14} {r.equity:>12,.2f} {r.day_pnl:>+11,.2f}{mark}"
                     f"{r.day_directional:>+11,.2f} {r.day_maxdiff:>+10,.2f} {r.cum_pnl:>+11,.2f} "
                     f"{r.gross_directional:>8.2f}x {r.gross_maxdiff:>8.2f}x {r.positions:>4d}")
    if frame["first"].any():
        lines.append("* first snapshot of the account: its day P&L is everything since the ledger's first fill")
    return "\n".join(lines) + "\n"
