"""Dates read in the reader's language, the same way on every page and in every message."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

from flask_babel import force_locale

from consent_center.services.localtime import format_day, format_moment
from consent_center.services.notifications import render_message

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# 10 January 2027, 14:05 in Shanghai (the tests' display time zone).
JAN_10 = datetime(2027, 1, 10, 6, 5, tzinfo=UTC)
CONTEXT = {"request_id": "REQ1", "due_at": JAN_10, "refusal_ground": None,
           "refusal_explanation": None}


def test_days_and_moments_in_each_language(app):
    with app.test_request_context():
        with force_locale("en"):
            assert format_day(date(2027, 1, 10)) == "10 January 2027"
            assert format_moment(JAN_10) == "10 January 2027, 14:05"
            assert format_day(date(2027, 1, 10), "short") == "10 Jan"
        with force_locale("zh_Hans_CN"):
            assert format_day(date(2027, 1, 10)) == "2027年1月10日"
            assert format_moment(JAN_10) == "2027年1月10日 14:05"


def test_a_datetime_is_dated_in_the_display_time_zone(app):
    late = datetime(2027, 1, 9, 17, 30, tzinfo=UTC)  # 01:30 on 10 January in Shanghai
    with app.test_request_context(), force_locale("en"):
        assert format_day(late) == "10 January 2027"


def test_an_sms_to_a_chinese_member_dates_in_chinese(app):
    with app.app_context():
        zh = render_message("deletion_received", "sms", "zh_Hans_CN", CONTEXT)
        en = render_message("deletion_received", "sms", "en", CONTEXT)
    assert "2027年1月10日" in zh.text and "1/10/27" not in zh.text
    assert "10 January 2027" in en.text


def test_no_template_picks_its_own_date_format():
    # Every date goes through the one helper's filters, with no format of its own but "short"
    # on a chart's axis.
    for path in TEMPLATES.rglob("*.*"):
        text = path.read_text()
        for argument in re.findall(r"\|format_date(?:time)?\(([^)]*)\)", text):
            assert argument == '"short"' and path.parts[-2] == "staff", (path, argument)
        assert "strftime" not in text, path


def test_a_moment_reads_the_same_whatever_zone_it_arrives_in(app):
    # The database's values are UTC, sometimes naive (SQLite): each is the same instant.
    from datetime import timedelta, timezone

    new_york = JAN_10.astimezone(timezone(timedelta(hours=-5)))
    with app.test_request_context(), force_locale("en"):
        assert format_moment(JAN_10.replace(tzinfo=None)) == "10 January 2027, 14:05"
        assert format_moment(new_york) == "10 January 2027, 14:05"
        assert format_day(new_york) == "10 January 2027"


def test_dates_follow_the_locale_forced_inside_a_request(app):
    # A message in the member's language, rendered while a page in another is served.
    with app.test_request_context(), force_locale("en"):
        assert format_moment(JAN_10) == "10 January 2027, 14:05"
        with force_locale("zh_Hans_CN"):
            assert format_moment(JAN_10) == "2027年1月10日 14:05"
        assert format_day(JAN_10) == "10 January 2027"
