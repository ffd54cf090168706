"""Who may be sent a text message, and how many an hour the whole site may send.

Text messages cost money per message and per country, so they are an attacker's lever: typing
foreign numbers into sign-in, registration or a profile makes the site pay. Two rules hold:

- SMS goes only to numbers in `SMS_ALLOWED_COUNTRIES` (ISO codes, by the number's region as
  the phonenumbers library reads it). A number outside is refused where it is typed (422), and
  no text is ever written to the outbox for one (a number stored before the rule changed).
- The site sends at most `SMS_HOURLY_BUDGET` texts an hour, counted in Flask-Limiter's storage
  (Redis in production), so every process shares the count. When it is spent, codes by SMS are
  refused with a clear message, other texts are written as failed (never sent), the staff
  dashboard shows an alarm and the audit log records it once per hour.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import phonenumbers
from flask import current_app
from flask_babel import get_locale, gettext
from flask_babel import lazy_gettext as _l
from limits import parse

from ..extensions import limiter
from .audit import record_audit
from .code_budget import try_again_at
from .errors import Invalid, Unavailable

BUDGET_SCOPE = "sms-hourly"
SITE = "site"

COUNTRY_REFUSED = "SMS country not allowed"
BUDGET_SPENT = "hourly SMS budget spent"


def sms_country_allowed(phone: str) -> bool:
    """Whether an E.164 number is in one of the countries SMS may go to."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return False
    region = phonenumbers.region_code_for_number(number)
    return region in current_app.config["SMS_ALLOWED_COUNTRIES"]


def allowed_calling_codes() -> list[int]:
    """The calling codes of the allowed countries (for set-wise SQL over stored numbers; a
    code several countries share, such as +1, admits all of them)."""
    codes = {
        phonenumbers.country_code_for_region(region)
        for region in current_app.config["SMS_ALLOWED_COUNTRIES"]
    }
    return sorted(code for code in codes if code)


def sms_country_problem(phone: str | None) -> object | None:
    """The message for a number text messages may not go to, else None."""
    if not phone or sms_country_allowed(phone):
        return None
    locale = get_locale()
    names = [
        (locale.territories.get(code, code) if locale is not None else code)
        for code in current_app.config["SMS_ALLOWED_COUNTRIES"]
    ]
    return _l(
        "We can send text messages only to mobile numbers in: %(countries)s. Use another "
        "number, or your email address.",
        countries=gettext(", ").join(names) or "—",
    )


def _budget():
    return parse(f"{current_app.config['SMS_HOURLY_BUDGET']} per hour")


def _enabled() -> bool:
    return current_app.config.get("RATELIMIT_ENABLED", True)


def sms_budget_spent_until() -> datetime | None:
    """When the spent hourly budget lets texts through again; None while texts may go."""
    if not _enabled():
        return None
    item, strategy = _budget(), limiter.limiter
    if strategy.test(item, BUDGET_SCOPE, SITE):
        return None
    reset_at = strategy.get_window_stats(item, BUDGET_SCOPE, SITE).reset_time
    return datetime.fromtimestamp(math.ceil(reset_at), UTC)


def sms_budget_use() -> tuple[int, int]:
    """(texts counted against this hour's budget, texts left in it)."""
    budget = current_app.config["SMS_HOURLY_BUDGET"]
    remaining = limiter.limiter.get_window_stats(_budget(), BUDGET_SCOPE, SITE).remaining
    return budget - remaining, remaining


def check_sms_destination(phone: str, field: str = "phone") -> None:
    """Refuse before anything is written: a number outside the allowed countries, or any
    number while the hourly budget is spent (codes and links by SMS use this).

    :raises Invalid: for a number outside `SMS_ALLOWED_COUNTRIES`.
    :raises Unavailable: while the hourly SMS budget is spent.
    """
    if problem := sms_country_problem(phone):
        raise Invalid(problem, {field: [problem]})
    until = sms_budget_spent_until()
    if until is not None:
        exc = Unavailable(
            _l(
                "We cannot send text messages at the moment. Use your email address, or try "
                "again after %(time)s.",
                time=try_again_at(until),
            )
        )
        exc.retry_after = max(1, math.ceil(until.timestamp() - time.time()))
        raise exc


def spend_sms(phone: str) -> str | None:
    """Count one text to `phone` against the hourly budget, as it is written to the outbox.

    :returns: None when it may be sent, else why not (stored as the row's error; the row is
        written as failed and never sent). The text that spends the budget is audited.
    """
    if not sms_country_allowed(phone):
        return COUNTRY_REFUSED
    if not _enabled():
        return None
    item, strategy = _budget(), limiter.limiter
    if not strategy.hit(item, BUDGET_SCOPE, SITE):
        return BUDGET_SPENT
    if strategy.get_window_stats(item, BUDGET_SCOPE, SITE).remaining == 0:
        _raise_alarm()  # this text spent the budget: the alarm is raised once, with it
    return None


def spend_sms_in_bulk(count: int) -> int:
    """Count up to `count` texts of a fan-out against the hourly budget.

    :returns: how many of them may be sent (the first ones); the caller writes the rest as
        failed with `BUDGET_SPENT`. Spending the budget raises the alarm once.
    """
    if count <= 0 or not _enabled():
        return count
    item, strategy = _budget(), limiter.limiter
    remaining = strategy.get_window_stats(item, BUDGET_SCOPE, SITE).remaining
    allowed = min(count, remaining)
    if allowed:
        strategy.hit(item, BUDGET_SCOPE, SITE, cost=allowed)
        if allowed == remaining:
            _raise_alarm()
    return allowed


def _raise_alarm() -> None:
    """Record, once per spent budget, that texts have stopped (the dashboard shows it while
    `sms_budget_spent_until` says so)."""
    record_audit(
        "notify.sms_budget_spent", actor=None, budget=current_app.config["SMS_HOURLY_BUDGET"]
    )
