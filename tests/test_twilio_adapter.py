"""The one Twilio adapter: what each error code and status means, and the signature check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from consent_center.domain import NotificationStatus
from consent_center.twilio_adapter import (
    OPT_OUT_CODES,
    PERMANENT_CODES,
    RETRY_CODES,
    Failure,
    failure_of,
    message_status,
    signature_valid,
)

PACKAGE = Path(__file__).resolve().parent.parent / "consent_center"


@pytest.mark.parametrize(
    ("status", "code", "failure"),
    [
        (400, 21610, Failure.OPTED_OUT),
        (None, "21610", Failure.OPTED_OUT),  # a status callback's ErrorCode is a string
        (400, 21211, Failure.PERMANENT),
        (None, "30005", Failure.PERMANENT),
        (400, 21614, Failure.PERMANENT),
        (429, 20429, Failure.RETRY),
        (429, None, Failure.RETRY),
        (503, 20503, Failure.RETRY),
        (500, None, Failure.RETRY),
        (404, 20404, Failure.PERMANENT),  # another 4xx: the request itself is wrong
        (None, None, Failure.RETRY),  # a timeout or a lost connection
        (None, "not a code", Failure.RETRY),
    ],
)
def test_each_error_means_one_thing(status, code, failure):
    assert failure_of(status, code) == failure


def test_the_code_sets_do_not_overlap():
    assert not (OPT_OUT_CODES & PERMANENT_CODES)
    assert not (OPT_OUT_CODES & RETRY_CODES)
    assert not (PERMANENT_CODES & RETRY_CODES)


def test_message_statuses():
    assert message_status("DELIVERED") == NotificationStatus.DELIVERED
    assert message_status("undelivered") == NotificationStatus.FAILED
    assert message_status("queued") == NotificationStatus.SENT
    assert message_status("receiving") is None
    assert message_status(None) is None


def test_signature_check():
    url, form = "https://privacy.example.com/webhooks/twilio/status", {"MessageSid": "SM1"}
    good = RequestValidator("token").compute_signature(url, form)
    assert signature_valid("token", url, form, good)
    assert not signature_valid("token", url, {"MessageSid": "SM2"}, good)
    assert not signature_valid("token", url, form, None)  # the SDK would raise TypeError
    assert not signature_valid(None, url, form, good)


def test_no_other_module_names_a_twilio_code_or_builds_a_client():
    codes = {str(c) for c in OPT_OUT_CODES | PERMANENT_CODES | RETRY_CODES}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "twilio_adapter.py":
            continue
        text = path.read_text()
        if set(re.findall(r"\b\d{5}\b", text)) & codes or re.search(
            r"twilio\.rest|RequestValidator|TwilioHttpClient", text
        ):
            offenders.append(str(path.relative_to(PACKAGE)))
    assert not offenders, offenders
