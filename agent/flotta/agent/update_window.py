"""When the device may apply a new version: the update window of ``updateSchedule``. Pure.

The window opens at each instant of the cron expression ``at`` (read in ``timeZone``) and
stays open ``startGraceSeconds`` (0: :data:`DEFAULT_GRACE_SECONDS`). An apply starts only while
it is open; one that started goes on to its end (health gate or rollback) even if the window
closes meanwhile. cronsim (no dependencies, a few hundred lines) reads the expression,
daylight saving time included.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flotta.schemas.wire import UpdateSchedule

DEFAULT_GRACE_SECONDS = 3600


class ScheduleError(ValueError):
    """The schedule cannot be read (a bad cron expression or an unknown time zone)."""


@dataclass(frozen=True, slots=True)
class Window:
    open: bool
    opens: datetime | None = None  # when closed: the next opening, in UTC
    closes: datetime | None = None  # when open: the end of this opening, in UTC


def grace(schedule: UpdateSchedule) -> timedelta:
    return timedelta(seconds=schedule.start_grace_seconds or DEFAULT_GRACE_SECONDS)


def window(schedule: UpdateSchedule | None, now: datetime) -> Window:
    """Whether the window is open at ``now`` (aware), and when it next opens or closes."""
    if schedule is None:
        return Window(open=True)
    # Imported on first use: a device without a schedule does not carry them (~0.4 MiB).
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from cronsim import CronSim, CronSimError

    try:
        zone = ZoneInfo(schedule.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {schedule.time_zone!r}") from exc
    local = now.astimezone(zone)
    try:
        # cronsim yields instants strictly before its start when reversed: start just after now.
        latest = next(CronSim(schedule.at, local + timedelta(seconds=1), reverse=True), None)
        following = next(CronSim(schedule.at, local), None)
    except CronSimError as exc:
        raise ScheduleError(f"bad cron expression {schedule.at!r}: {exc}") from exc
    span = grace(schedule)
    if latest is not None and latest <= local < latest + span:
        return Window(open=True, closes=(latest + span).astimezone(UTC))
    return Window(open=False, opens=following.astimezone(UTC) if following else None)
