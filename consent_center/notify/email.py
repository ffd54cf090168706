"""Email over SMTP through Flask-Mail, one connection per batch, with a timeout and TLS checks."""

from __future__ import annotations

import smtplib
import ssl

from flask import current_app
from flask_mail import Connection, Mail, Message

from .base import DeliveryResult, Outgoing

mail = Mail()


class _SafeConnection(Connection):
    """Flask-Mail's connection with a timeout and certificate verification (it has neither)."""

    def __init__(self, mail_state, timeout: float) -> None:
        super().__init__(mail_state)
        self.timeout = timeout

    def configure_host(self) -> smtplib.SMTP:
        state = self.mail
        context = ssl.create_default_context()
        if state.use_ssl:
            host = smtplib.SMTP_SSL(state.server, state.port, timeout=self.timeout, context=context)
        else:
            host = smtplib.SMTP(state.server, state.port, timeout=self.timeout)
        if state.use_tls:
            host.starttls(context=context)
        if state.username and state.password:
            host.login(state.username, state.password)
        return host

    def __exit__(self, exc_type, exc_value, tb) -> None:
        # quit() on a dropped connection raises; the batch result is already recorded.
        if self.host is not None:
            try:
                self.host.quit()
            except (smtplib.SMTPException, OSError):
                self.host.close()


def _build_message(msg: Outgoing) -> Message:
    message = Message(
        subject=msg.subject or "",
        recipients=[msg.recipient],
        body=msg.text,
        html=msg.html,
        sender=current_app.config["MAIL_DEFAULT_SENDER"],
        extra_headers=dict(msg.headers),
    )
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


class SmtpTransport:
    """Sends a batch over one SMTP connection; one bad recipient does not abort the batch."""

    def send_batch(self, messages: list[Outgoing]) -> list[DeliveryResult]:
        # Built from the current config on each batch: Flask-Mail's own state is a snapshot
        # taken at init_app, which would ignore later configuration (and tests).
        state = mail.init_mail(current_app.config, testing=False)
        timeout = current_app.config.get("MAIL_TIMEOUT", 10)
        results: list[DeliveryResult] = []
        pending = list(messages)
        while pending:
            try:
                with _SafeConnection(state, timeout) as conn:
                    while pending:
                        msg = pending[0]
                        message = _build_message(msg)
                        try:
                            conn.send(message)
                        except smtplib.SMTPServerDisconnected:
                            raise
                        except (
                            smtplib.SMTPRecipientsRefused,
                            smtplib.SMTPResponseException,
                        ) as exc:
                            results.append(_classify(exc))
                            pending.pop(0)
                            if (
                                isinstance(exc, smtplib.SMTPResponseException)
                                and exc.smtp_code >= 421
                            ):
                                # The session may be in a bad state after DATA errors: reset it.
                                conn.host.rset()
                            continue
                        results.append(DeliveryResult(ok=True, provider_id=message.msgId))
                        pending.pop(0)
            except (TimeoutError, smtplib.SMTPException, OSError) as exc:
                # Connection-level failure: everything not yet attempted is transient.
                if pending:
                    results.append(_classify(exc))
                    pending.pop(0)
                    results.extend(
                        DeliveryResult(ok=False, transient=True, error="SMTP connection lost")
                        for _ in pending
                    )
                    pending = []
        return results
