"""The NYSE market calendar (exchange_calendars XNYS): trading days, open/close with early closes.

Every date here is a session date in New York; times come back as tz-aware America/New_York.
The wall clock lives here too (`now_ny`): the real time, or `WOLFKIT_NOW` when set, so a schedule can
be rehearsed at the hour it would run (see docs/operations.md).
"""

from __future__ import annotations

import os
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

NY = ZoneInfo("America/New_York")
NOW_ENV = "WOLFKIT_NOW"  # ISO-8601; when set, it is the wall clock (naive = New York time)


@lru_cache(maxsize=1)
def _xnys() -> xcals.ExchangeCalendar:
    return xcals.get_calendar("XNYS", start="2000-01-01")


def _ts(d: date | str) -> pd.Timestamp:
    return pd.Timestamp(d).normalize().tz_localize(None)


def is_trading_day(d: date | str) -> bool:
    """True when NYSE holds a session on `d`."""
    return bool(_xnys().is_session(_ts(d)))


def session_open(d: date | str) -> datetime:
    """The opening time of session `d` (ET)."""
    return _xnys().session_open(_ts(d)).tz_convert(NY).to_pydatetime()


def session_close(d: date | str) -> datetime:
    """The closing time of session `d` (ET), early closes included."""
    return _xnys().session_close(_ts(d)).tz_convert(NY).to_pydatetime()


def is_early_close(d: date | str) -> bool:
    return session_close(d).time() < datetime(2000, 1, 1, 16, 0).time()


def previous_session(d: date | str) -> date:
    """The last session strictly before `d` (whether or not `d` is itself a session)."""
    return _xnys().date_to_session(_ts(d), direction="previous").date() if not is_trading_day(d) \
        else _xnys().previous_session(_ts(d)).date()


def next_session(d: date | str) -> date:
    """The first session strictly after `d`."""
    return _xnys().date_to_session(_ts(d), direction="next").date() if not is_trading_day(d) \
        else _xnys().next_session(_ts(d)).date()


def latest_session(d: date | str) -> date:
    """`d` if it is a session, else the last session before it."""
    return _ts(d).date() if is_trading_day(d) else previous_session(d)


def sessions_between(start: date | str, end: date | str) -> list[date]:
    """Sessions in [start, end], both inclusive."""
    return [s.date() for s in _xnys().sessions_in_range(_ts(start), _ts(end))]


def sessions_ending(end: date | str, count: int) -> list[date]:
    """The `count` sessions up to and including `end` (or the last session before it)."""
    last = latest_session(end)
    return [s.date() for s in _xnys().sessions_window(_ts(last), -count)]


def now_ny() -> datetime:
    """Now in New York: the real clock, or the instant `WOLFKIT_NOW` names (ISO-8601; without an offset it
    is New York time). Why: a schedule is rehearsed at its own hour (the recipe tests), and every command
    reads this one clock. A live broker refuses it (`wolfkit.broker.gate`)."""
    from wolfkit.errors import BadInputError

    text = os.environ.get(NOW_ENV, "").strip()
    if not text:
        return datetime.now(NY)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise BadInputError(f"{NOW_ENV}={text!r}: not an ISO-8601 time; use e.g. 2026-01-15T08:30 (New York) "
                            f"or 2026-01-15T13:30+00:00, or unset it to use the real clock") from None
    return at.astimezone(NY) if at.tzinfo else at.replace(tzinfo=NY)


def today_ny() -> date:
    """Today's date in New York, by the wall clock (`now_ny`)."""
    return now_ny().date()


def resolve_date(text: str | date | None, today: date | None = None) -> date:
    """`YYYY-MM-DD`, `today` (New York) or `latest` (the latest session on or before today)."""
    from wolfkit.errors import BadInputError

    if isinstance(text, date):
        return text
    today = today or today_ny()
    if text in (None, "", "today"):
        return today
    if text == "latest":
        return latest_session(today)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInputError(f"--date {text!r}: expected YYYY-MM-DD, 'today' or 'latest'") from None


def last_session() -> date:
    """The last session the calendar knows (exchange_calendars covers about a year ahead)."""
    return _xnys().last_session.date()


def closed_notice(d: date, outcome: str, hint: str = "use --force to run anyway") -> str | None:
    """None on a session; on a weekend or holiday the line a command prints instead of running
    (`outcome` says what did not happen, e.g. "Nothing scanned"; `hint` how to go on anyway)."""
    if is_trading_day(d):
        return None
    why = "a weekend" if d.weekday() >= 5 else "an NYSE holiday"
    return f"{d} is not a trading day ({why}); the next session is {next_session(d)}. {outcome} ({hint})."


def check_session(d: date, what: str = "--date", fix: str = "") -> date:
    """`d` when it is an NYSE session the calendar covers; otherwise a `BadInputError` naming the
    supported range, or the sessions either side of the weekend or holiday (and `fix`, when given)."""
    from wolfkit.errors import BadInputError

    first, last = _xnys().first_session.date(), last_session()
    if not first <= d <= last:
        raise BadInputError(
            f"{what} {d}: outside the market calendar's range {first} … {last}; pass a session date in it")
    if not is_trading_day(d):
        why = f"a {d:%A}" if d.weekday() >= 5 else "an NYSE holiday"
        raise BadInputError(
            f"{what} {d} is {why}, not a trading session; the previous session is {previous_session(d)}, "
            f"the next is {next_session(d)}" + (f"; {fix}" if fix else ""))
    return d
