"""One budget for every one-time code and link, whichever route sends it.

A code or an approval link spends from two budgets before anything is written: one per
destination (a keyed digest of the normalized address or number, never the address itself),
shared by sign-in, registration, profile changes, phone verification, re-authentication and
guardian links; and one per member who asks, when someone signed in asks. Sign-in has no
member budget: an unknown address must be answered exactly like a known one.

The counters live in Flask-Limiter's storage (`RATELIMIT_STORAGE_URI`: Redis in production),
so every web process and worker sees the same counts.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from flask import current_app
from flask_babel import lazy_gettext as _l
from limits import parse

from ..extensions import limiter
from ..models import Member
from .errors import TooManyAttempts
from .localtime import format_moment

DESTINATION_SCOPE = "code-destination"
MEMBER_SCOPE = "code-member"
UNKNOWN_FAILURES_SCOPE = "code-failures-unknown"
UNKNOWN_LOCK_SCOPE = "code-lock-unknown"


class CodeBudgetSpent(TooManyAttempts):
    """No more codes or links for now; `retry_after` says in how many seconds."""

    def __init__(self, message: object, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


def try_again_at(at: datetime) -> str:
    """A moment as the member reads it: in the display time zone and the page's language."""
    return format_moment(at)


def spend_code_budget(destination_digest: str, requested_by: Member | None) -> None:
    """Count one code or link to `destination_digest`, asked for by `requested_by` (if any).

    Both budgets are tested before either is spent, so a refusal costs nothing.

    :param destination_digest: `auth.identifier_digest` of the normalized address or number.
    :raises CodeBudgetSpent: when a budget is spent; nothing may be written or sent then.
    """
    config = current_app.config
    if not config.get("RATELIMIT_ENABLED", True):
        return
    checks = [(config["CODE_RATE_LIMIT_DESTINATION"], DESTINATION_SCOPE, destination_digest)]
    if requested_by is not None:
        checks.append((config["CODE_RATE_LIMIT_MEMBER"], MEMBER_SCOPE, requested_by.public_id))
    strategy = limiter.limiter
    for limit, scope, key in checks:
        item = parse(limit)
        if not strategy.test(item, scope, key):
            reset_at = strategy.get_window_stats(item, scope, key).reset_time
            seconds = max(1, math.ceil(reset_at - time.time()))
            when = try_again_at(datetime.fromtimestamp(time.time() + seconds, UTC))
            if scope == DESTINATION_SCOPE:
                message = _l(
                    "We have sent several codes to this address or number already. You can "
                    "ask for another after %(time)s.",
                    time=when,
                )
            else:
                message = _l(
                    "You have asked for several codes already. You can ask for another "
                    "after %(time)s.",
                    time=when,
                )
            raise CodeBudgetSpent(message, seconds)
    for limit, scope, key in checks:
        strategy.hit(parse(limit), scope, key)


# Wrong codes for an address with no account. An account counts its wrong codes on its own
# row (`auth.check_code`) and is locked after too many; an unknown address must then answer
# the same way, or ten guesses would tell which addresses have accounts. Its count and lock
# live here, keyed by the address's digest, with the same limit and window.


def _unknown_items():
    config = current_app.config
    window = config["CODE_LOCKOUT_WINDOW_SECONDS"]
    failures = parse(f"{config['CODE_LOCKOUT_FAILURES'] - 1} per {window} seconds")
    return failures, parse(f"1 per {window} seconds")


def unknown_locked_until(destination_digest: str) -> datetime | None:
    """Until when an address with no account accepts no code, or None."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return None
    _failures, lock = _unknown_items()
    strategy = limiter.limiter
    if strategy.test(lock, UNKNOWN_LOCK_SCOPE, destination_digest):
        return None
    reset_at = strategy.get_window_stats(lock, UNKNOWN_LOCK_SCOPE, destination_digest).reset_time
    return datetime.fromtimestamp(reset_at, UTC)


def count_unknown_failure(destination_digest: str) -> datetime | None:
    """Count a wrong code for an address with no account.

    :returns: until when it is locked, when this wrong code reaches the limit; else None.
    """
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return None
    failures, lock = _unknown_items()
    strategy = limiter.limiter
    if strategy.hit(failures, UNKNOWN_FAILURES_SCOPE, destination_digest):
        return None
    strategy.clear(failures, UNKNOWN_FAILURES_SCOPE, destination_digest)
    strategy.hit(lock, UNKNOWN_LOCK_SCOPE, destination_digest)
    return unknown_locked_until(destination_digest)
