"""Which heartbeat is newer, when device clocks cannot be trusted. Pure.

Heartbeats of one device can arrive out of order (two bridge replicas share its messages; a
redelivery after a reconnect), so an older report must not undo a newer one. The device's
``time`` orders them, but a device clock can be far ahead (a wrong RTC), reset to 1970 after
a power cut, or stepped back by NTP. Ordering by device time alone would then ignore every
later report until the clock caught up, freezing the device's status.

So a report is stale only when it is at most ``REORDER_WINDOW`` behind the last applied one,
and only while that one's time is plausible (not more than ``FUTURE_SKEW`` ahead of the
bridge's clock). Any other jump is taken as the clock changing, and the report applies.
"""

from __future__ import annotations

from datetime import datetime, timedelta

REORDER_WINDOW = timedelta(seconds=30)
FUTURE_SKEW = timedelta(minutes=5)


def is_stale(report_time: datetime, last_applied: datetime | None, now: datetime) -> bool:
    if last_applied is None or report_time >= last_applied:
        return False
    if last_applied > now + FUTURE_SKEW:
        return False
    return last_applied - report_time <= REORDER_WINDOW


def clock_is_off(report_time: datetime, now: datetime) -> bool:
    """The device's clock is more than ``FUTURE_SKEW`` away from the bridge's."""
    return abs(report_time - now) > FUTURE_SKEW
