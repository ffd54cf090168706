"""What a transport is given and what it answers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Outgoing:
    """A message ready to go, built from an outbox row (a code's text from its sealed copy)."""

    notification_id: int
    public_id: str
    channel: str
    kind: str
    recipient: str
    subject: str | None
    text: str
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds after which the provider should drop an undelivered message (sign-in codes).
    validity_seconds: int | None = None
    # The request that wrote the message (`observability`): logged, and sent with webhooks.
    request_id: str | None = None


@dataclass(frozen=True)
class DeliveryResult:
    """How one send went. `transient` failures are retried; others are final."""

    ok: bool
    provider_id: str | None = None
    transient: bool = False
    error: str | None = None
    # The recipient told the provider to stop (`twilio_adapter.Failure.OPTED_OUT`): record
    # the opt-out.
    opted_out: bool = False


class UnavailableTransport:
    """A channel this site does not send on: each message fails for good, with the reason
    (never a fallback to the dev mailbox outside development, where codes could be read)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def send_each(self, messages: list[Outgoing]):
        for _msg in messages:
            yield DeliveryResult(ok=False, transient=False, error=self.reason)
