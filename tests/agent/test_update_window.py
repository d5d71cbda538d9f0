"""The update window's decisions, without a clock: open or closed, next opening, DST."""

from datetime import UTC, datetime, timedelta

import pytest

from flotta.agent.update_window import DEFAULT_GRACE_SECONDS, ScheduleError, window
from flotta.schemas.wire import UpdateSchedule


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_no_schedule_is_always_open() -> None:
    assert window(None, at("2026-01-01T12:00:00+00:00")).open


def test_open_from_the_instant_for_the_grace() -> None:
    schedule = UpdateSchedule(at="0 2 * * *", start_grace_seconds=600)
    assert window(schedule, at("2026-01-01T02:00:00+00:00")).open
    inside = window(schedule, at("2026-01-01T02:09:59+00:00"))
    assert inside.open
    assert inside.closes == at("2026-01-01T02:10:00+00:00")
    closed = window(schedule, at("2026-01-01T02:10:00+00:00"))
    assert not closed.open
    assert closed.opens == at("2026-01-02T02:00:00+00:00")
    assert window(schedule, at("2026-01-01T01:59:59+00:00")).opens == at(
        "2026-01-01T02:00:00+00:00"
    )


def test_zero_grace_means_the_default_hour() -> None:
    schedule = UpdateSchedule(at="0 2 * * *")
    assert DEFAULT_GRACE_SECONDS == 3600
    assert window(schedule, at("2026-01-01T02:59:00+00:00")).open
    assert not window(schedule, at("2026-01-01T03:00:00+00:00")).open


def test_the_time_zone_is_honoured_across_daylight_saving() -> None:
    schedule = UpdateSchedule(at="30 2 * * *", time_zone="Europe/Berlin", start_grace_seconds=60)
    # Winter: 02:30 in Berlin is 01:30 UTC.
    assert window(schedule, at("2026-01-10T01:30:30+00:00")).open
    # Summer: 02:30 in Berlin is 00:30 UTC.
    assert window(schedule, at("2026-07-10T00:30:30+00:00")).open
    assert not window(schedule, at("2026-07-10T01:30:30+00:00")).open
    # 2026-03-29 has no 02:30 in Berlin: cronsim runs the job once at 03:00 instead.
    opens = window(schedule, at("2026-03-29T00:00:00+00:00")).opens
    assert opens is not None
    assert opens.tzinfo is UTC
    assert opens - at("2026-03-29T00:00:00+00:00") < timedelta(days=1)


@pytest.mark.parametrize(
    ("expression", "zone"), [("not cron", "UTC"), ("61 * * * *", "UTC"), ("0 2 * * *", "Mars/Base")]
)
def test_bad_schedules_are_an_error(expression: str, zone: str) -> None:
    with pytest.raises(ScheduleError):
        window(UpdateSchedule(at=expression, time_zone=zone), at("2026-01-01T00:00:00+00:00"))
