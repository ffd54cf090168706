"""Email over SMTP, one connection per batch (Flask-Mail's, with a timeout and TLS checks),
each message written here."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable, Iterator
from email.charset import SHORTEST, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formatdate

from flask import current_app
from flask_mail import Connection, Mail, sanitize_address

from .base import DeliveryResult, Outgoing

mail = Mail()

# Messages are written with their headers kept as the strings set (compat32) and CRLF line
# ends. Flask-Mail's `Message` writes under `email.policy.SMTP`, which parses every header back
# into an object each time the writer looks at it: some 40% of a worker's time per email.
_WIRE = compat32.clone(linesep="\r\n")
# UTF-8 bodies sent as 8bit, headers in the shorter of Q and B encoding (as Flask-Mail sends).
_UTF8 = Charset("utf-8")
_UTF8.header_encoding = SHORTEST
_UTF8.body_encoding = None


class _SafeConnection(Connection):
    """Flask-Mail's connection with a timeout and certificate verification (it has neither)."""

    def __init__(self, mail_state, timeout: float, ca_file: str | None = None) -> None:
        super().__init__(mail_state)
        self.timeout = timeout
        self.ca_file = ca_file

    def configure_host(self) -> smtplib.SMTP:
        state = self.mail
        context = None
        if state.use_ssl or state.use_tls:
            # The system's CAs, or only the one in MAIL_CA_FILE (a server with a private CA).
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


def _message_id(msg: Outgoing, domain: str) -> str:
    """Stable per notification: a retry after a crash carries the same id, so mail systems can
    recognise it as the same message."""
    return f"<{msg.public_id}@{domain}>"


def _wire_message(msg: Outgoing, sender: str, to: str, msg_id: str) -> bytes:
    """The message as it goes over SMTP: its text, with the HTML as an alternative if any.

    :param sender: the From address, as `flask_mail.sanitize_address` writes it.
    :param to: the recipient, likewise.
    """
    text = MIMEText(msg.text, "plain", _UTF8)
    if msg.html is None:
        mime = text
    else:
        # The boundary is the message's own random id behind "=_": the id is in the text only
        # inside links, never at the start of a line after "--=_", so the writer need not
        # search the parts for a boundary of its own making.
        html = MIMEText(msg.html, "html", _UTF8)
        mime = MIMEMultipart("alternative", f"=_{msg.public_id}", [text, html])
    subject = msg.subject or ""
    mime["Subject"] = subject if subject.isascii() else Header(subject, _UTF8)
    mime["From"] = sender
    mime["To"] = to
    mime["Date"] = formatdate(localtime=True)
    mime["Message-ID"] = msg_id
    for name, value in msg.headers.items():
        mime[name] = value
    return mime.as_bytes(policy=_WIRE)


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


def _line_break(value: str) -> bool:
    return "\n" in value or "\r" in value


def _valid_recipient(address: str) -> bool:
    return bool(address) and "@" in address and not _line_break(address)


class SmtpTransport:
    """Sends over one SMTP connection per batch; one bad recipient does not abort the batch.

    `messages` is consumed one at a time, each only when it is about to be sent."""

    def send_each(self, messages: Iterable[Outgoing]) -> Iterator[DeliveryResult]:
        # Built from the current config on each batch: Flask-Mail's own state is a snapshot
        # taken at init_app, which would ignore later configuration (and tests).
        state = mail.init_mail(current_app.config, testing=False)
        timeout = current_app.config.get("MAIL_TIMEOUT", 10)
        ca_file = current_app.config.get("MAIL_CA_FILE")
        sender = sanitize_address(current_app.config["MAIL_DEFAULT_SENDER"])
        domain = _message_domain()
        pending = iter(messages)
        in_flight: Outgoing | None = None  # taken from `pending`, its result not yet given
        try:
            with _SafeConnection(state, timeout, ca_file) as conn:
                for in_flight in pending:
                    result = self._send_one(conn, in_flight, sender, domain)
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
    def _send_one(conn: _SafeConnection, msg: Outgoing, sender: str, domain: str):
        if not _valid_recipient(msg.recipient):
            return DeliveryResult(ok=False, error="invalid recipient address")
        if any(_line_break(v) for v in (msg.subject or "", *msg.headers.values())):
            return DeliveryResult(ok=False, error="line break in a header")
        to = sanitize_address(msg.recipient)
        msg_id = _message_id(msg, domain)
        try:
            conn.host.sendmail(sender, [to], _wire_message(msg, sender, to, msg_id))
        except smtplib.SMTPServerDisconnected:
            raise
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException) as exc:
            # After a refused DATA the session needs a reset before the next one.
            conn.host.rset()
            return _classify(exc)
        return DeliveryResult(ok=True, provider_id=msg_id)
