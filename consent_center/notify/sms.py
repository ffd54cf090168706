"""SMS through the twilio SDK (twilio_adapter.py holds the client and the error codes)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from flask import current_app
from requests.exceptions import RequestException
from twilio.base.exceptions import TwilioException

from ..links import public_url_for
from ..services.sms_guard import COUNTRY_REFUSED, sms_country_allowed
from ..twilio_adapter import Failure, close_client, failure_of, make_client
from .base import DeliveryResult, Outgoing


def status_callback_url() -> str | None:
    """Where Twilio reports each message's delivery (none without a public address)."""
    if not current_app.config.get("PUBLIC_BASE_URL"):
        return None
    return public_url_for("webhooks.twilio_status")


def delivery_result(exc: Exception) -> DeliveryResult:
    """A failed send as a delivery result, by what Twilio's error means."""
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    error = f"Twilio {status or ''} {code or type(exc).__name__}".strip()
    failure = failure_of(status, code)
    return DeliveryResult(
        ok=False,
        transient=failure == Failure.RETRY,
        error=error,
        opted_out=failure == Failure.OPTED_OUT,
    )


class TwilioTransport:
    """Sends each message through the Messages API, taking each from `messages` only when
    it is about to be sent."""

    def send_each(self, messages: Iterable[Outgoing]) -> Iterator[DeliveryResult]:
        client = make_client(current_app.config)
        sender = current_app.config["TWILIO_FROM_NUMBER"]
        callback = status_callback_url()
        try:
            yield from self._send(client, sender, callback, messages)
        finally:
            close_client(client)
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
                yield delivery_result(exc)
            else:
                yield DeliveryResult(ok=True, provider_id=created.sid)
