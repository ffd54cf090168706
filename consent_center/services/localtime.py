"""Calendar days in the display time zone (DISPLAY_TIMEZONE), as UTC instants.

Staff pick dates ("effective on 1 March", "registered after 1 May"); the database holds UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

from ..clock import utcnow


def display_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])


def local_day_start(day: date) -> datetime:
    """The UTC instant at which `day` begins in the display time zone."""
    return datetime.combine(day, time.min, tzinfo=display_zone()).astimezone(UTC)


def local_today(now: datetime | None = None) -> date:
    """Today's date in the display time zone."""
    return (now or utcnow()).astimezone(display_zone()).date()


def earliest_local_day(not_before: datetime) -> date:
    """The first date whose start (display time zone) is at or after `not_before`."""
    day = not_before.astimezone(display_zone()).date()
    return day if local_day_start(day) >= not_before else day + timedelta(days=1)
