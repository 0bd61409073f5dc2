"""Deadlines and days in the course's time zone: the instant shown is the instant
enforced, in several zones and across changes of summer time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from grader import units
from grader.service.policy import day_bounds, deadline_utc, late_penalty
from grader.spec import parse_spec

BERLIN, NEW_YORK, KOLKATA = (
    ZoneInfo("Europe/Berlin"),
    ZoneInfo("America/New_York"),
    ZoneInfo("Asia/Kolkata"),
)
S = dt.timedelta(seconds=1)


def spec(deadline: str, per_day: float = 0.1) -> object:
    return parse_spec(
        f"id: x\ntitle: X\ninput_shape: [1]\npolicy:\n  deadline: {deadline}\n"
        f"  late_penalty_per_day: {per_day}\n"
    )


def test_an_offset_deadline_is_shown_as_the_instant_it_enforces() -> None:
    s = spec("2026-12-01T09:09+01:00")
    instant = deadline_utc(s, BERLIN)
    assert instant == dt.datetime(2026, 12, 1, 8, 9, tzinfo=dt.UTC)
    assert units.when(instant, ZoneInfo("UTC")) == "2026-12-01 08:09 UTC"
    assert units.when(instant, BERLIN) == "2026-12-01 09:09 CET"
    assert units.when(instant, KOLKATA) == "2026-12-01 13:39 IST"
    # 40 minutes before the deadline shown is on time, in every zone it is shown in.
    for zone in (ZoneInfo("UTC"), BERLIN, NEW_YORK, KOLKATA):
        assert late_penalty(s, dt.datetime(2026, 12, 1, 7, 29), zone) == (0, 0.0)
        assert late_penalty(s, dt.datetime(2026, 12, 1, 8, 9) + S, zone) == (1, 0.1)


@pytest.mark.parametrize(
    ("zone", "deadline", "utc"),
    [
        # Europe/Berlin: summer time starts 2026-03-29 02:00 (UTC+1 -> UTC+2)
        (BERLIN, "2026-03-28T09:00", dt.datetime(2026, 3, 28, 8, 0)),
        (BERLIN, "2026-03-30T09:00", dt.datetime(2026, 3, 30, 7, 0)),
        # America/New_York: summer time ends 2026-11-01 02:00 (UTC-4 -> UTC-5)
        (NEW_YORK, "2026-10-31T23:59", dt.datetime(2026, 11, 1, 3, 59)),
        (NEW_YORK, "2026-11-01T23:59", dt.datetime(2026, 11, 2, 4, 59)),
        (KOLKATA, "2026-03-29T23:59", dt.datetime(2026, 3, 29, 18, 29)),  # no summer time
    ],
)
def test_a_deadline_without_offset_is_course_wall_time(
    zone: ZoneInfo, deadline: str, utc: dt.datetime
) -> None:
    s = spec(deadline)
    instant = deadline_utc(s, zone)
    assert instant == utc.replace(tzinfo=dt.UTC)
    # shown as written, in the course's zone, with the zone named
    assert units.when(instant, zone).startswith(deadline.replace("T", " "))
    # the boundary: on time at the instant, one day late a second after, two days late
    # a second after 24 hours, whatever the wall clock did in between
    assert late_penalty(s, utc, zone) == (0, 0.0)
    assert late_penalty(s, utc + S, zone) == (1, 0.1)
    assert late_penalty(s, utc + dt.timedelta(days=1), zone) == (1, 0.1)
    assert late_penalty(s, utc + dt.timedelta(days=1) + S, zone) == (2, 0.2)


def test_zone_names_follow_summer_time() -> None:
    before, after = dt.datetime(2026, 3, 29, 0, 59), dt.datetime(2026, 3, 29, 1, 0)
    assert units.when(before, BERLIN) == "2026-03-29 01:59 CET"
    assert units.when(after, BERLIN) == "2026-03-29 03:00 CEST"


def test_course_days_are_23_or_25_hours_across_a_change() -> None:
    start, end = day_bounds(dt.datetime(2026, 3, 29, 12), BERLIN)
    assert (start, end) == (dt.datetime(2026, 3, 28, 23), dt.datetime(2026, 3, 29, 22))
    start, end = day_bounds(dt.datetime(2026, 11, 1, 12), NEW_YORK)
    assert end - start == dt.timedelta(hours=25)
    assert day_bounds(dt.datetime(2026, 11, 1, 12))[0] == dt.datetime(2026, 11, 1)  # UTC


def test_relative_hints() -> None:
    now = dt.datetime(2026, 12, 1, 12, 0)
    assert units.relative(now + dt.timedelta(hours=3), now) == "in 3 h"
    assert units.relative(now - dt.timedelta(days=2, hours=1), now) == "2 days ago"
    assert units.relative(now + dt.timedelta(minutes=40), now) == "in 40 min"
    assert units.days_late(2) == "2 days late" and units.days_late(1) == "1 day late"
    assert units.days_late(0) == "on time"
