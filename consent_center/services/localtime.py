"""Calendar days in the display time zone (DISPLAY_TIMEZONE), as UTC instants.

Staff pick dates ("effective on 1 March", "registered after 1 May"); the database holds UTC.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from babel import Locale as BabelLocale
from babel.dates import DateTimePattern, parse_pattern
from flask import current_app
from flask_babel import get_locale

from ..clock import utcnow

logger = logging.getLogger(__name__)


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


# Working days: the `holidays` package (vacanza) knows each jurisdiction's public holidays and,
# for China, the State Council's yearly schedule with its make-up working days (调休: a Saturday
# or Sunday that is a working day, in exchange for a weekday off). The schedule is published
# each November for the next year; `holidays` 0.109 carries it for 2001-2026. For a later year
# it still knows the statutory holidays (computed by their rules, the lunar ones included) and
# the weekend, but not the make-up days or the bridging days off: working days there fall back
# to "not a weekend, not a statutory holiday", and a warning in the log asks for an upgrade.


@dataclass(frozen=True)
class _WorkingYear:
    days_off: frozenset[date]  # public holidays, bridging days off included
    weekend_workdays: frozenset[date]  # make-up working days on a weekend
    weekend: frozenset[int]  # weekday numbers (Monday 0)
    scheduled: bool  # the official schedule (make-up days) is known for this year


@lru_cache(maxsize=64)
def _working_year(jurisdiction: str, year: int) -> _WorkingYear:
    calendar = holidays.country_holidays(jurisdiction, years=year, categories=(holidays.PUBLIC,))
    schedule = getattr(calendar, "special_public_holidays", None) or {}
    # Jurisdictions that never move working days are fully described by their rules.
    scheduled = not getattr(calendar, "has_substituted_holidays", False) or year <= max(schedule)
    if not scheduled:
        logger.warning(
            "holidays %s has no official schedule for %s %d: make-up working days unknown; "
            "upgrade the holidays package",
            holidays.__version__,
            jurisdiction,
            year,
        )
    return _WorkingYear(
        days_off=frozenset(day for day in calendar if day.year == year),
        weekend_workdays=frozenset(
            day for day in calendar.weekend_workdays if day.year == year
        ),
        weekend=frozenset(calendar.weekend),
        scheduled=scheduled,
    )


def is_working_day(day: date, jurisdiction: str) -> bool:
    """Whether `day` is a working day in `jurisdiction` (an ISO 3166 code, e.g. "CN"):
    not a public holiday, and not a weekend day unless it is a make-up working day."""
    year = _working_year(jurisdiction, day.year)
    if day in year.days_off:
        return False
    return day.weekday() not in year.weekend or day in year.weekend_workdays


def schedule_known(year: int, jurisdiction: str) -> bool:
    """Whether the installed calendar knows `year`'s official schedule (make-up days)."""
    return _working_year(jurisdiction, year).scheduled


def add_working_days(start: date, days: int, jurisdiction: str) -> date:
    """The `days`-th working day after `start` (which itself never counts)."""
    day, counted = start, 0
    while counted < days:
        day += timedelta(days=1)
        if is_working_day(day, jurisdiction):
            counted += 1
    return day


def local_day_end(day: date) -> datetime:
    """The last second of `day` in the display time zone, as a UTC instant."""
    return local_day_start(day + timedelta(days=1)) - timedelta(seconds=1)


# How a date or a moment reads, per language: the one definition every page and message uses
# (through the `format_date` and `format_datetime` template filters). Numeric dates such as
# 1/10/27 are ambiguous across countries; a month's name or 年月日 is not.
_DAY_PATTERNS = {"en": "d MMMM y", "zh": "y年M月d日"}
_SHORT_DAY_PATTERNS = {"en": "d MMM", "zh": "M月d日"}  # axis labels, where the year is known
_MOMENT_PATTERNS = {"en": "d MMMM y, HH:mm", "zh": "y年M月d日 HH:mm"}


@lru_cache(maxsize=32)
def _compiled(pattern: str, locale: str) -> tuple[DateTimePattern, BabelLocale]:
    # Parsed once per pattern and language: a page shows a dozen dates, and Flask-Babel's
    # formatters look up the locale, the time zone and the pattern again for each.
    return parse_pattern(pattern), BabelLocale.parse(locale)


def _format(patterns: dict[str, str], value: date | datetime) -> str:
    locale = str(get_locale() or "en")
    pattern, babel_locale = _compiled(patterns.get(locale[:2], patterns["en"]), locale)
    return pattern.apply(value, babel_locale)


def _displayed(value: datetime) -> datetime:
    """`value` in the display time zone (a naive value is UTC, as the database holds it)."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(display_zone())


def format_day(value: date | datetime, style: str = "long") -> str:
    """A day in the language in force (a datetime is first moved to the display time zone):
    "10 January 2027", "2027年1月10日"; `style="short"` drops the year ("10 Jan")."""
    if isinstance(value, datetime):
        value = _displayed(value).date()
    return _format(_SHORT_DAY_PATTERNS if style == "short" else _DAY_PATTERNS, value)


def format_moment(value: datetime) -> str:
    """A moment in the display time zone and the language in force: "10 January 2027, 14:05",
    "2027年1月10日 14:05"."""
    return _format(_MOMENT_PATTERNS, _displayed(value))
