"""SMS through the twilio SDK, with an explicit timeout and a configurable API base URL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from flask import current_app
from requests.exceptions import RequestException
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from ..services.sms_guard import COUNTRY_REFUSED, sms_country_allowed
from .base import DeliveryResult, Outgoing

# Twilio error codes after which retrying cannot help.
PERMANENT_CODES = {21211, 21610, 21614, 21635, 21606, 21608, 21408, 21612, 30005, 30006}
OPT_OUT_CODE = 21610
TRANSIENT_CODES = {20429, 20500, 20503}


def twilio_client() -> Client:
    """A client for the configured account, pointed at TWILIO_API_BASE_URL."""
    config = current_app.config
    client = Client(
        config["TWILIO_ACCOUNT_SID"],
        config["TWILIO_AUTH_TOKEN"],
        http_client=TwilioHttpClient(timeout=config.get("TWILIO_TIMEOUT", 10)),
    )
    client.api.base_url = config["TWILIO_API_BASE_URL"].rstrip("/")
    return client


def status_callback_url() -> str | None:
    base = current_app.config.get("PUBLIC_BASE_URL")
    return f"{base.rstrip('/')}/webhooks/twilio/status" if base else None


def classify_twilio_error(exc: Exception) -> DeliveryResult:
    """Map an SDK exception to transient or permanent."""
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    error = f"Twilio {status or ''} {code or type(exc).__name__}".strip()
    if code == OPT_OUT_CODE:
        return DeliveryResult(ok=False, transient=False, error=error, opted_out=True)
    if code in PERMANENT_CODES:
        return DeliveryResult(ok=False, transient=False, error=error)
    if status == 429 or code in TRANSIENT_CODES or (status is not None and status >= 500):
        return DeliveryResult(ok=False, transient=True, error=error)
    if status is not None and 400 <= status < 500:
        return DeliveryResult(ok=False, transient=False, error=error)
    # Timeouts and connection errors carry no status.
    return DeliveryResult(ok=False, transient=True, error=error)


class TwilioTransport:
    """Sends each message through the Messages API, taking each from `messages` only when
    it is about to be sent."""

    def send_each(self, messages: Iterable[Outgoing]) -> Iterator[DeliveryResult]:
        client = twilio_client()
        sender = current_app.config["TWILIO_FROM_NUMBER"]
        callback = status_callback_url()
        try:
            yield from self._send(client, sender, callback, messages)
        finally:
            if client.http_client.session is not None:
                client.http_client.session.close()

    def _send(self, client, sender, callback, messages) -> Iterator[DeliveryResult]:
        for msg in messages:
            # Checked again as it leaves: SMS_ALLOWED_COUNTRIES may have narrowed since the
            # text was written to the outbox.
            if not sms_country_allowed(msg.recipient or ""):
                yield DeliveryResult(ok=False, transient=False, error=COUNTRY_REFUSED)
                continue
            kwargs = {"to": msg.recipient, "from_": sender, "body": msg.text}
            if callback:
                kwargs["status_callback"] = callback
            if msg.validity_seconds:
                kwargs["validity_period"] = msg.validity_seconds
            try:
                created = client.messages.create(**kwargs)
            except (TwilioException, RequestException) as exc:
                # Timeouts and connection errors come from requests, not as TwilioException.
                yield classify_twilio_error(exc)
            else:
                yield DeliveryResult(ok=True, provider_id=created.sid)
