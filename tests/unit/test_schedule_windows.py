"""A schedule's window (apps/sessions/windows.py): days, times, time zone, past midnight."""

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from apps.sessions.models.windows import Window

PARIS = ZoneInfo("Europe/Paris")
OFFICE = Window(days=(0, 1, 2, 3, 4), start=time(9), end=time(18), time_zone="Europe/Paris")
NIGHT = Window(days=(4,), start=time(22), end=time(2), time_zone="UTC")


def at(*args, zone=UTC) -> datetime:
    return datetime(*args, tzinfo=zone)


def test_no_window_is_always_open():
    assert Window().is_open(at(2026, 12, 6, 3, 0))
    assert Window().seconds_left(at(2026, 12, 6, 23, 0)) == 3600  # to the next midnight


def test_weekday_office_hours_in_their_own_time_zone():
    # Monday 30 Nov 2026; Paris is UTC+1 in winter.
    assert OFFICE.is_open(at(2026, 11, 30, 9, 0, zone=PARIS))
    assert OFFICE.is_open(at(2026, 11, 30, 8, 30))  # 09:30 in Paris
    assert not OFFICE.is_open(at(2026, 11, 30, 8, 59, zone=PARIS))
    assert not OFFICE.is_open(at(2026, 11, 30, 17, 0))  # 18:00 in Paris: closed (end excluded)
    assert not OFFICE.is_open(at(2026, 12, 5, 12, 0, zone=PARIS))  # Saturday
    assert OFFICE.seconds_left(at(2026, 11, 30, 16, 0)) == 3600


def test_summer_time_moves_the_window_in_utc():
    # 1 July: Paris is UTC+2, so 07:30 UTC is 09:30 there.
    assert OFFICE.is_open(at(2026, 7, 1, 7, 30))
    assert not OFFICE.is_open(at(2026, 7, 1, 16, 30))


def test_an_overnight_window_belongs_to_the_day_it_opens():
    assert NIGHT.is_open(at(2026, 12, 4, 23, 0))  # Friday night
    assert NIGHT.is_open(at(2026, 12, 5, 1, 30))  # Saturday morning, still Friday's window
    assert NIGHT.seconds_left(at(2026, 12, 5, 1, 30)) == 1800
    assert not NIGHT.is_open(at(2026, 12, 5, 2, 0))
    assert not NIGHT.is_open(at(2026, 12, 5, 23, 0))  # Saturday night: not a window day
    assert not NIGHT.is_open(at(2026, 12, 4, 1, 0))  # Friday morning is Thursday's window


def test_equal_start_and_end_is_the_whole_day():
    whole = Window(days=(6,), start=time(0), end=time(0))
    assert whole.is_open(at(2026, 12, 6, 0, 0))
    assert whole.is_open(at(2026, 12, 6, 23, 59))
    assert not whole.is_open(at(2026, 12, 7, 0, 0))
