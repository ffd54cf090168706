"""The one adapter to Twilio: the client, the signature check of its webhooks, and what each
of its error codes and message statuses means here.

Sending (notify/sms.py), status callbacks and inbound keywords (services/sms_events.py,
web/webhooks/views.py) all ask this module; no other module names a Twilio code.
"""

from __future__ import annotations

from enum import StrEnum

from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from .domain import NotificationStatus


class Failure(StrEnum):
    """What a failed send or an error in a status callback means for the message."""

    RETRY = "retry"  # try again later (rate limit, Twilio down, network)
    PERMANENT = "permanent"  # retrying cannot help
    OPTED_OUT = "opted_out"  # the recipient replied STOP: record their opt-out too


# The recipient replied STOP to our number (error 21610 on sending or in a callback).
OPT_OUT_CODES = frozenset({21610})
# Retrying cannot help: an invalid or non-mobile number (21211, 21614, 21635), a number or
# region our account may not send to (21408, 21612), our own configuration (21606, 21608), a
# carrier that cannot reach the handset or an unknown destination (30005, 30006).
PERMANENT_CODES = frozenset({21211, 21408, 21606, 21608, 21612, 21614, 21635, 30005, 30006})
# Too many requests (20429) and Twilio's own failures (20500, 20503).
RETRY_CODES = frozenset({20429, 20500, 20503})

# Twilio's message statuses (status callbacks) as our outbox statuses.
MESSAGE_STATUSES = {
    "queued": NotificationStatus.SENT,
    "accepted": NotificationStatus.SENT,
    "sending": NotificationStatus.SENT,
    "sent": NotificationStatus.SENT,
    "delivered": NotificationStatus.DELIVERED,
    "undelivered": NotificationStatus.FAILED,
    "failed": NotificationStatus.FAILED,
}


def _code(code: object) -> int | None:
    """An error code as a number: the SDK gives ints, callbacks strings."""
    try:
        return int(code) if code not in (None, "") else None
    except (TypeError, ValueError):
        return None


def failure_of(status: int | None, code: object) -> Failure:
    """What an error means: by its Twilio code first, then by its HTTP status (429 and 5xx
    retry, other 4xx do not); no status at all is a timeout or a lost connection (retry)."""
    code = _code(code)
    if code in OPT_OUT_CODES:
        return Failure.OPTED_OUT
    if code in PERMANENT_CODES:
        return Failure.PERMANENT
    if status == 429 or code in RETRY_CODES or (status is not None and status >= 500):
        return Failure.RETRY
    if status is not None and 400 <= status < 500:
        return Failure.PERMANENT
    return Failure.RETRY


def message_status(twilio_status: str | None) -> NotificationStatus | None:
    """Our status for a Twilio message status, or None for one we do not track."""
    return MESSAGE_STATUSES.get((twilio_status or "").lower())


def is_configured(config) -> bool:
    """Whether the site has the credentials to send through Twilio."""
    return bool(config.get("TWILIO_ACCOUNT_SID") and config.get("TWILIO_AUTH_TOKEN"))


def make_client(config) -> Client:
    """A client for the configured account, with a timeout (the SDK has none by default)
    and pointed at TWILIO_API_BASE_URL (a local stand-in in tests).

    The environment's proxy and CA settings (`HTTPS_PROXY`, `NO_PROXY`, `REQUESTS_CA_BUNDLE`)
    are read once, here: left to requests, every message would scan the whole environment
    for them again."""
    base_url = config["TWILIO_API_BASE_URL"].rstrip("/")
    http_client = TwilioHttpClient(timeout=config.get("TWILIO_TIMEOUT", 10))
    session = http_client.session
    settings = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies, session.verify = settings["proxies"], settings["verify"]
    session.trust_env = False
    client = Client(
        config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"], http_client=http_client
    )
    client.api.base_url = base_url
    return client


def close_client(client: Client) -> None:
    """Close the client's pooled connection."""
    if client.http_client.session is not None:
        client.http_client.session.close()


def signature_valid(auth_token: str | None, url: str, form: dict, signature: str | None) -> bool:
    """Whether `signature` (X-Twilio-Signature) signs this request: `url` is the exact public
    URL Twilio called. A missing token or signature is invalid (the SDK's `validate` would
    raise TypeError on a missing signature)."""
    if not auth_token or not signature:
        return False
    return RequestValidator(auth_token).validate(url, form, signature)
