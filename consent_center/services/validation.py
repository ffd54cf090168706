"""Input rules shared by every form: contact details and free text that must not hold secrets."""

from __future__ import annotations

import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l

_DIGIT_RUNS = re.compile(r"(?<!\d)(?:\d[ \-]?){12,18}\d(?!\d)")
_CREDENTIAL = re.compile(
    r"\b(pass(word|wd)?|pwd|pin|cvv|cvc|密码|口令|验证码)\s*[:=：是]\s*\S+", re.IGNORECASE
)

CARD_NUMBER_MESSAGE = _l(
    "This looks like a payment card number. We never collect payment details: please remove it."
)
CREDENTIAL_MESSAGE = _l(
    "This looks like a password or code. We never ask for passwords: please remove it."
)


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def contains_card_number(text: str) -> bool:
    """True when `text` holds a run of 13-19 digits (spaces or dashes allowed) passing Luhn."""
    for match in _DIGIT_RUNS.finditer(text or ""):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return False


def secret_text_problem(text: str | None) -> object | None:
    """The message to show when free text holds a card number or a credential, else None."""
    if not text:
        return None
    if contains_card_number(text):
        return CARD_NUMBER_MESSAGE
    if _CREDENTIAL.search(text):
        return CREDENTIAL_MESSAGE
    return None


def normalize_email(raw: str) -> str | None:
    """The canonical (lower-cased) form of an email address, or None when it is not one."""
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.normalized.lower()


def normalize_phone(raw: str, default_region: str = "CN") -> str | None:
    """The E.164 form of a mobile number, or None when it is not a valid mobile number."""
    try:
        number = phonenumbers.parse(raw.strip(), default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    kind = phonenumbers.number_type(number)
    if kind not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_email(email: str) -> str:
    """`a***@example.com`: enough to recognise an address without showing it."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str) -> str:
    """`+86*******8000`: the country code and last four digits."""
    return phone[:3] + "*" * max(len(phone) - 7, 0) + phone[-4:]
