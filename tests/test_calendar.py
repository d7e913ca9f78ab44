"""The NYSE calendar: weekends, holidays, early closes, previous/next sessions, date parsing."""

from __future__ import annotations

from datetime import date, time

import pytest

from wolfkit import calendar as cal
from wolfkit.errors import BadInputError


def test_weekend_and_holiday_are_not_sessions():
    assert not cal.is_trading_day(date(2026, 11, 21))  # Saturday
    assert not cal.is_trading_day(date(2026, 11, 26))  # Thanksgiving
    assert not cal.is_trading_day(date(2025, 12, 25))  # Christmas
    assert cal.is_trading_day(date(2026, 11, 20))


def test_early_close_after_thanksgiving():
    d = date(2026, 11, 27)
    assert cal.is_trading_day(d) and cal.is_early_close(d)
    assert cal.session_close(d).time() == time(13, 0)
    assert cal.session_open(d).time() == time(9, 30)
    assert not cal.is_early_close(date(2026, 11, 20))
    assert cal.session_close(date(2026, 11, 20)).time() == time(16, 0)


def test_times_are_new_york_even_across_dst():
    assert cal.session_open(date(2026, 7, 1)).utcoffset().total_seconds() == -4 * 3600
    assert cal.session_open(date(2026, 1, 5)).utcoffset().total_seconds() == -5 * 3600


def test_previous_next_latest():
    assert cal.previous_session(date(2026, 11, 23)) == date(2026, 11, 20)  # Monday -> Friday
    assert cal.previous_session(date(2026, 11, 22)) == date(2026, 11, 20)  # Sunday -> Friday
    assert cal.next_session(date(2026, 11, 25)) == date(2026, 11, 27)  # skips Thanksgiving
    assert cal.next_session(date(2026, 11, 26)) == date(2026, 11, 27)
    assert cal.latest_session(date(2026, 11, 21)) == date(2026, 11, 20)
    assert cal.latest_session(date(2026, 11, 20)) == date(2026, 11, 20)


def test_sessions_between_and_ending():
    s = cal.sessions_between(date(2026, 11, 23), date(2026, 11, 30))
    assert s == [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 27), date(2026, 11, 30)]
    assert cal.sessions_ending(date(2026, 11, 22), 2) == [date(2026, 11, 19), date(2026, 11, 20)]


def test_resolve_date():
    today = date(2026, 11, 21)
    assert cal.resolve_date("today", today) == today
    assert cal.resolve_date("latest", today) == date(2026, 11, 20)
    assert cal.resolve_date("2026-11-18", today) == date(2026, 11, 18)
    with pytest.raises(BadInputError, match="YYYY-MM-DD"):
        cal.resolve_date("18/11/2026", today)
