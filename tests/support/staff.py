"""Helpers for the staff console tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from flask import current_app

from tests.conftest import make_member


def make_staff(role: str = "staff", **fields):
    return make_member(role=role, **fields)


def local_midnight(day: date) -> datetime:
    """The UTC instant at which `day` starts in the display time zone."""
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
