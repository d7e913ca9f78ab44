"""When a plan may send orders: the session rule every command that sends orders applies first.

A plan executes only in its own session — the pre-open and regular hours of its `as_of` NYSE session
(early closes from `wolfkit.calendar`) — and opening-auction orders (`opg`) only until Alpaca's
cut-off. Anything else is how yesterday's plan, or today's after the close, would queue orders for a
later open at prices that no longer hold.

- Pre-open starts at 04:00 ET (`PRE_OPEN`): Alpaca takes orders for the session from then (its
  extended-hours day starts at 04:00), and a plan's session cannot start earlier than its own morning.
- The regular session ends at the calendar's close (16:00, or 13:00 on an early close); from then on
  an order would wait for the next session.
- `opg` orders: Alpaca refuses them from 09:28 ET (`wolfkit.broker.base.OPG_REFUSED`); the bound here is
  that cut-off, so an auction order is never sent when the broker would refuse it or turn it into
  something else. (A bracket order goes out as `day` whatever the plan says, so it is not an auction order.)

`session_rule` is the pure rule (the clock is an argument); `clear_to_send` is what the commands
call at their edge, before anything is sent: exit 2 saying why and what to do, unless the user
overrides the rule on purpose (`--session-override "why"`), which is returned to be printed and
recorded in the ledger.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from wolfkit import calendar
from wolfkit.broker.base import OPG_REFUSED
from wolfkit.calendar import NY
from wolfkit.domain import TimeInForce
from wolfkit.errors import BadInputError
from wolfkit.orders import OrderPlan

PRE_OPEN = time(4, 0)  # ET: Alpaca accepts orders for the session from here (extended hours start)
OPG_CUTOFF = OPG_REFUSED[0]  # ET: Alpaca refuses opening-auction orders from 09:28
OVERRIDE_FLAG = "--session-override"


CLOCK_ENV = "WOLFKIT_NOW"  # ISO-8601 time the commands take as now (tests, rehearsals); refused for live


def wall_clock() -> datetime:
    """Now in New York: the clock `wolfkit execute`, `intraday`, `status` and the execute notebook check the
    session rule with, and the simulated account's clock.

    The one way to inject it into a separate process (a CLI run in a test, a rehearsal of a trading day at
    night): `WOLFKIT_NOW=2024-06-03T09:31:00-04:00` (ISO-8601; without an offset it is New York time). It
    is refused when the broker is live (`wolfkit.broker.gate.broker_kind_for`); a value that does not
    parse is exit 2 naming it.
    """
    fixed = os.environ.get(CLOCK_ENV, "").strip()
    if not fixed:
        return datetime.now(NY)
    try:
        at = datetime.fromisoformat(fixed)
    except ValueError:
        raise BadInputError(f"{CLOCK_ENV}={fixed!r}: not an ISO-8601 time; write e.g. 2024-06-03T09:31:00-04:00, "
                            f"or unset {CLOCK_ENV} to use the real clock") from None
    return at.astimezone(NY) if at.tzinfo else at.replace(tzinfo=NY)


@dataclass(frozen=True)
class SessionHours:
    """When one session takes orders (ET)."""

    session: date
    pre_open: datetime
    open: datetime
    close: datetime
    opg_cutoff: datetime
    early_close: bool


def session_hours(session: date) -> SessionHours:
    """The hours of NYSE session `session` (it must be a session)."""
    close = calendar.session_close(session)
    return SessionHours(session, datetime.combine(session, PRE_OPEN, tzinfo=NY), calendar.session_open(session),
                        close, datetime.combine(session, OPG_CUTOFF, tzinfo=NY), calendar.is_early_close(session))


@dataclass(frozen=True)
class SessionVerdict:
    """Whether a plan may send orders now; when not, why and what to do."""

    allowed: bool
    why: str = ""
    fix: str = ""


def _premarket_hint(today: date) -> str:
    if calendar.is_trading_day(today):
        return "build today's with `wolfkit premarket --date today`"
    return (f"today ({today}) is not a trading session; build the next session's ({calendar.next_session(today)}) "
            "with `wolfkit premarket` that morning")


def session_rule(as_of: date, now: datetime, opg_orders: int = 0) -> SessionVerdict:
    """The session rule for a plan of session `as_of` at `now` (naive times are New York's), with
    `opg_orders` opening-auction orders in it. Pure: the clock is an argument."""
    now = now.astimezone(NY) if now.tzinfo else now.replace(tzinfo=NY)
    today = now.date()
    if not calendar.is_trading_day(as_of):
        kind = f"a {as_of:%A}" if as_of.weekday() >= 5 else "an NYSE holiday"
        return SessionVerdict(False, f"this plan is for {as_of}, {kind}, not a trading session",
                              _premarket_hint(today))
    hours = session_hours(as_of)
    if today < as_of:
        return SessionVerdict(False, f"this plan is for {as_of}; today (New York) is {today}",
                              f"execute it on {as_of} from {PRE_OPEN:%H:%M} ET")
    if today > as_of:
        return SessionVerdict(False, f"this plan is for {as_of}, an earlier session; today (New York) is {today}",
                              _premarket_hint(today))
    if now < hours.pre_open:
        return SessionVerdict(False, f"it is {now:%H:%M} ET, before the {as_of} session takes orders "
                                     f"({PRE_OPEN:%H:%M} ET)", f"execute it from {PRE_OPEN:%H:%M} ET")
    if now >= hours.close:
        early = " (an early close)" if hours.early_close else ""
        return SessionVerdict(
            False, f"the {as_of} session closed at {hours.close:%H:%M} ET{early} and it is {now:%H:%M} ET: orders "
                   "sent now would wait for the next session at this plan's prices",
            f"build the next session's plan ({calendar.next_session(as_of)}) with `wolfkit premarket` that morning")
    if opg_orders and now >= hours.opg_cutoff:
        return SessionVerdict(
            False, f"the plan has {opg_orders} opening-auction (opg) order(s), which Alpaca accepts until "
                   f"{OPG_CUTOFF:%H:%M} ET, and it is {now:%H:%M} ET",
            "rebuild the plan with `execution.time_in_force: day` to trade the rest of the session, or execute "
            f"auction plans before {OPG_CUTOFF:%H:%M} ET")
    return SessionVerdict(True)


def opg_orders(plan: OrderPlan) -> int:
    """The plan's opening-auction orders (a bracket goes out as `day`, so it is not one)."""
    return sum(1 for o in plan.orders if o.time_in_force == TimeInForce.OPG
               and o.take_profit is None and o.stop_loss is None)


@dataclass(frozen=True)
class SessionOverride:
    """A deliberate send outside the session rule: who, when, why, and what the rule said."""

    why: str
    refused: str
    by: str
    at: datetime

    def detail(self) -> dict[str, Any]:
        """The ledger event's detail."""
        return {"why": self.why, "rule": self.refused, "by": self.by, "at": self.at}

    def message(self) -> str:
        return (f"session rule overridden by {self.by} at {self.at:%Y-%m-%d %H:%M} ET ({OVERRIDE_FLAG} "
                f"{self.why!r}): {self.refused}")


def clear_to_send(path: Path | str, plan: OrderPlan, now: datetime, override: str | None = None
                  ) -> SessionOverride | None:
    """Apply the session rule at a command's edge: None when the plan is in its session; a
    `SessionOverride` when it is not but `override` (the user's reason) says to send anyway; else
    `BadInputError` (exit 2) naming the file, why, and what to do — nothing is sent."""
    verdict = session_rule(plan.as_of, now, opg_orders(plan))
    if verdict.allowed:
        return None
    if override is None:
        raise BadInputError(f"{path}: {verdict.why}; nothing was sent. To fix: {verdict.fix} (to send anyway, "
                            f"deliberately: {OVERRIDE_FLAG} \"the reason\", recorded in the ledger)")
    if not override.strip():
        raise BadInputError(f"{OVERRIDE_FLAG} needs the reason (it is recorded in the ledger), e.g. "
                            f"{OVERRIDE_FLAG} \"closing a position the broker holds after hours\"; nothing was sent")
    try:
        who = f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):  # no user name for this uid (a container)
        who = f"uid?@{socket.gethostname()}"
    at = now.astimezone(NY) if now.tzinfo else now.replace(tzinfo=NY)
    return SessionOverride(override.strip(), verdict.why, who, at)
