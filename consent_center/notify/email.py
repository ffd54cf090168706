"""Email over SMTP through Flask-Mail, one connection per batch, with a timeout and TLS checks."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable, Iterator

from flask import current_app
from flask_mail import Connection, Mail, Message

from .base import DeliveryResult, Outgoing

mail = Mail()


class _SafeConnection(Connection):
    """Flask-Mail's connection with a timeout and certificate verification (it has neither)."""

    def __init__(self, mail_state, timeout: float, ca_file: str | None = None) -> None:
        super().__init__(mail_state)
        self.timeout = timeout
        self.ca_file = ca_file

    def configure_host(self) -> smtplib.SMTP:
        state = self.mail
        # The system's CAs, or only the one in MAIL_CA_FILE (a mail server with a private CA).
        context = ssl.create_default_context(cafile=self.ca_file)
        if state.use_ssl:
            host = smtplib.SMTP_SSL(state.server, state.port, timeout=self.timeout, context=context)
        else:
            host = smtplib.SMTP(state.server, state.port, timeout=self.timeout)
        try:
            if state.use_tls:
                host.starttls(context=context)
            if state.username and state.password:
                host.login(state.username, state.password)
        except BaseException:
            # A refused certificate or login: drop the connection, not leave it open.
            host.close()
            raise
        return host

    def __exit__(self, exc_type, exc_value, tb) -> None:
        # quit() on a dropped connection raises; the batch result is already recorded.
        if self.host is not None:
            try:
                self.host.quit()
            except (smtplib.SMTPException, OSError):
                self.host.close()


def _message_domain() -> str:
    sender = current_app.config["MAIL_DEFAULT_SENDER"] or "localhost"
    return sender.rsplit("@", 1)[-1].strip("> ") or "localhost"


def _build_message(msg: Outgoing) -> Message:
    message = Message(
        subject=msg.subject or "",
        recipients=[msg.recipient],
        body=msg.text,
        html=msg.html,
        sender=current_app.config["MAIL_DEFAULT_SENDER"],
        extra_headers=dict(msg.headers),
    )
    # Stable per notification: a retry after a crash carries the same id, so mail systems
    # can recognise it as the same message.
    message.msgId = f"<{msg.public_id}@{_message_domain()}>"
    return message


def _classify(exc: Exception) -> DeliveryResult:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        permanent = all(500 <= c < 600 for c in codes)
        return DeliveryResult(
            ok=False, transient=not permanent, error=f"SMTP recipient refused {codes}"
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        permanent = 500 <= exc.smtp_code < 600
        return DeliveryResult(ok=False, transient=not permanent, error=f"SMTP {exc.smtp_code}")
    return DeliveryResult(ok=False, transient=True, error=f"SMTP {type(exc).__name__}")


def _valid_recipient(address: str) -> bool:
    # Flask-Mail validates with `assert`, which vanishes under `python -O`: check here.
    return bool(address) and "@" in address and "\n" not in address and "\r" not in address


class SmtpTransport:
    """Sends over one SMTP connection per batch; one bad recipient does not abort the batch.

    `messages` is consumed one at a time, each only when it is about to be sent."""

    def send_each(self, messages: Iterable[Outgoing]) -> Iterator[DeliveryResult]:
        # Built from the current config on each batch: Flask-Mail's own state is a snapshot
        # taken at init_app, which would ignore later configuration (and tests).
        state = mail.init_mail(current_app.config, testing=False)
        timeout = current_app.config.get("MAIL_TIMEOUT", 10)
        ca_file = current_app.config.get("MAIL_CA_FILE")
        pending = iter(messages)
        in_flight: Outgoing | None = None  # taken from `pending`, its result not yet given
        try:
            with _SafeConnection(state, timeout, ca_file) as conn:
                for in_flight in pending:
                    result = self._send_one(conn, in_flight)
                    in_flight = None
                    yield result
        except (smtplib.SMTPException, OSError) as exc:
            # Connection-level failure (refused, untrusted certificate, login refused): it says
            # nothing about the messages, so the one in flight and the rest are retried later.
            failure = DeliveryResult(ok=False, transient=True, error=_classify(exc).error)
            if in_flight is not None:
                yield failure
            for _ in pending:
                yield failure

    @staticmethod
    def _send_one(conn: _SafeConnection, msg: Outgoing) -> DeliveryResult:
        if not _valid_recipient(msg.recipient):
            return DeliveryResult(ok=False, error="invalid recipient address")
        message = _build_message(msg)
        try:
            conn.send(message)
        except smtplib.SMTPServerDisconnected:
            raise
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException) as exc:
            # After a refused DATA the session needs a reset before the next one.
            conn.host.rset()
            return _classify(exc)
        return DeliveryResult(ok=True, provider_id=message.msgId)
