"""A real SMTP server for tests: :class:`SmtpSink`, built on aiosmtpd's ``Controller``.

The sink listens on 127.0.0.1 on an ephemeral port, records every accepted message and can
be scripted to misbehave, so code that sends mail (smtplib, Flask-Mail) can be tested
against a genuine SMTP conversation instead of a mock::

    with SmtpSink() as sink:
        app.config.update(MAIL_SERVER=sink.host, MAIL_PORT=sink.port)
        ...  # send
        [received] = sink.wait_for(1)
        assert received.message["Subject"] == "Hello"

Faults:

* :meth:`SmtpSink.reject_recipient` answers ``RCPT TO`` for one address with a permanent
  error (550 by default). With smtplib, a message whose recipients are *all* refused raises
  ``SMTPRecipientsRefused``; a partial refusal is only reported in ``sendmail``'s return
  value (Flask-Mail 0.10.0 ignores that value, so partial refusals pass silently there).
* :meth:`SmtpSink.fail_next` answers the next *n* ``DATA`` commands with a temporary error
  (451 by default): smtplib raises ``SMTPDataError``.
* :meth:`SmtpSink.stop` then :meth:`SmtpSink.start` simulates an outage: while stopped,
  connections to the port are refused (``ConnectionRefusedError``); after ``start()`` the
  sink listens on the *same* port again. Recorded messages and scripted faults survive.

As production servers do, the sink can offer STARTTLS (``tls_context``, with
``require_starttls``) and demand AUTH (``credentials``: only that login and password are
accepted, and only over TLS); each message records whether it came over TLS and who logged in.

Implementation notes (checked against aiosmtpd 1.4.6):

* ``Controller(port=0)`` binds an ephemeral port but keeps ``controller.port == 0`` and then
  fails its own start-up probe (it connects to port 0). :class:`_EphemeralController` reads
  the bound port from the listening socket before that probe, so there is no
  pick-a-free-port-then-bind race.
* A ``Controller`` closes its event loop when stopped and cannot be started again, so each
  :meth:`SmtpSink.start` builds a fresh controller (and event loop) on the remembered port.
  asyncio's ``create_server`` sets ``SO_REUSEADDR``, so the rebind is not blocked by
  connections in ``TIME_WAIT``.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from functools import cached_property
from types import TracebackType
from typing import Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["ReceivedMessage", "SmtpSink"]

_PARSER = BytesParser(policy=default_policy)


@dataclass(frozen=True)
class ReceivedMessage:
    """One message accepted by the sink.

    Attributes:
        mail_from: The envelope sender (``MAIL FROM``).
        rcpt_tos: The envelope recipients that were accepted (``RCPT TO``), in order.
        data: The raw message bytes as received after ``DATA`` (line endings exactly as the
            client sent them; the terminating ``.`` line removed).
        message: ``data`` parsed (see the property).
        mail_options: ESMTP options given with ``MAIL FROM`` (e.g. ``SIZE=...``).
        received_at: ``time.time()`` when the message was accepted.
    """

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str] = field(default_factory=list)
    received_at: float = 0.0
    tls: bool = False
    login: str | None = None

    @cached_property
    def message(self) -> EmailMessage:
        """``data`` parsed with ``email.policy.default`` after turning CRLF into LF (so
        ``message.get_content()`` of a CRLF message ends in ``"\\n"``), when first asked
        for: parsing costs more than the SMTP exchange itself, and a sink that only counts
        messages never asks."""
        parsed = _PARSER.parsebytes(self.data.replace(b"\r\n", b"\n"))
        assert isinstance(parsed, EmailMessage)
        return parsed


class _SinkHandler:
    """aiosmtpd handler: applies the sink's scripted faults and records accepted mail.

    Hooks run on the controller's event-loop thread; all shared state lives in the owning
    :class:`SmtpSink` and is guarded by its condition variable.
    """

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    # Hook names and signatures are fixed by aiosmtpd.
    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Refuse scripted addresses, accept every other recipient."""
        rejection = self._sink._rejection_for(address)
        if rejection is not None:
            return rejection
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Fail the message if a failure is scripted, otherwise record it."""
        failure = self._sink._take_data_failure()
        if failure is not None:
            return failure
        if self._sink.data_delay:
            # A slow server: lets fault tests kill a client in the middle of a batch.
            await asyncio.sleep(self._sink.data_delay)
        # Scripted waits (see SmtpSink.hold_after and SmtpSink.meet), polled so the event
        # loop keeps serving other connections meanwhile.
        while self._sink._must_wait(session):
            await asyncio.sleep(0.01)
        raw = envelope.original_content or b""
        if isinstance(raw, str):  # only when decode_data=True, which the sink never sets
            raw = raw.encode("utf-8", errors="surrogateescape")
        login = getattr(session.auth_data, "login", None) if session.authenticated else None
        self._sink._record(
            ReceivedMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                data=raw,
                mail_options=list(envelope.mail_options),
                received_at=time.time(),
                tls=session.ssl is not None,
                login=login.decode() if isinstance(login, bytes) else login,
            )
        )
        return "250 OK: message accepted"


class _CountingSMTP(SMTP):
    """aiosmtpd's SMTP protocol, counting each client connection in the owning sink."""

    def __init__(self, handler: _SinkHandler, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self._sink = handler._sink

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._sink._count_connection()
        super().connection_made(transport)


class _Authenticator:
    """aiosmtpd authenticator accepting exactly one login and password."""

    def __init__(self, login: str, password: str) -> None:
        self._expected = (login.encode(), password.encode())

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login,
            auth_data.password,
        ) == self._expected
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class _EphemeralController(Controller):
    """A ``Controller`` that supports ``port=0`` by reading back the bound port, and counts
    connections (``_CountingSMTP``)."""

    def factory(self) -> SMTP:
        return _CountingSMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # ``start()`` calls this after the listening socket is bound and before it probes
        # the server with a connection to ``self.port``.
        if self.server is not None and self.server.sockets:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def _check_code(code: int, low: int, high: int, what: str) -> None:
    if not low <= code <= high:
        raise ValueError(f"{what} must be an SMTP code in {low}..{high}, got {code}")


class SmtpSink:
    """A local SMTP server that records messages and can be scripted to fail.

    Public API:
        ``start()``, ``stop()``, ``running``, ``host``, ``port``, ``messages``,
        ``clear()``, ``wait_for(count, timeout)``, ``reject_recipient(addr, code, text)``,
        ``fail_next(n, code, text)``; usable as a context manager (start/stop).

    All methods are thread-safe. State (messages and faults) is kept across
    ``stop()``/``start()``; ``clear()`` resets it.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        server_hostname: str = "smtp-sink.test",
        ready_timeout: float = 5.0,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        """Configure the sink; nothing listens until :meth:`start`.

        Args:
            host: Address to bind; the default is IPv4 loopback only.
            port: Port to bind; 0 picks a free port on the first start, and later
                starts reuse that port.
            server_hostname: Name the server announces in its 220 greeting and EHLO
                reply (given explicitly so aiosmtpd never calls ``socket.getfqdn()``).
            ready_timeout: Seconds to wait for the server thread to come up.
            tls_context: Offer STARTTLS with this server context.
            require_starttls: Refuse every command but EHLO/STARTTLS/QUIT before TLS.
            credentials: Demand AUTH (PLAIN or LOGIN) with this login and password.
        """
        self._host = host
        self._port = port
        # Seconds to wait before accepting each message (0: answer at once).
        self.data_delay = 0.0
        self._hold_after: int | None = None
        self.held = threading.Event()  # a message is being held by hold_after()
        self._meet: int | None = None
        self._in_data: set[int] = set()
        self.met = threading.Event()  # meet(n) saw n connections in DATA at once
        self._server_hostname = server_hostname
        self._ready_timeout = ready_timeout
        self._smtp_options: dict = {}
        if tls_context is not None:
            self._smtp_options.update(tls_context=tls_context, require_starttls=require_starttls)
        if credentials is not None:
            self._smtp_options.update(
                authenticator=_Authenticator(*credentials), auth_required=True
            )
        self._handler = _SinkHandler(self)
        self._controller: _EphemeralController | None = None
        self._lifecycle = threading.Lock()
        self._cond = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._connections = 0
        self._rejections: dict[str, str] = {}
        self._data_failures: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the sink binds and clients should connect to."""
        return self._host

    @property
    def port(self) -> int:
        """The listening port (0 until the first :meth:`start` when created with port=0)."""
        return self._port

    @property
    def running(self) -> bool:
        """Whether the sink is currently accepting connections."""
        return self._controller is not None

    def start(self) -> None:
        """Start listening (again) on :attr:`host`/:attr:`port`.

        Raises:
            RuntimeError: If the sink is already running.
            OSError: If the port cannot be bound (e.g. taken while the sink was stopped).
        """
        with self._lifecycle:
            if self._controller is not None:
                raise RuntimeError("SmtpSink is already running")
            controller = _EphemeralController(
                self._handler,
                hostname=self._host,
                port=self._port,
                server_hostname=self._server_hostname,
                ready_timeout=self._ready_timeout,
                **self._smtp_options,
            )
            try:
                controller.start()
            except BaseException:
                # A failed start leaves the thread's event loop open (aiosmtpd only
                # closes it on a clean stop): tidy up so no ResourceWarning leaks.
                controller.stop(no_assert=True)
                if not controller.loop.is_closed():
                    controller.loop.close()
                raise
            self._port = controller.port
            self._controller = controller

    def stop(self) -> None:
        """Stop listening and drop open connections; further connections are refused.

        Stopping a sink that is not running does nothing.
        """
        with self._lifecycle:
            controller, self._controller = self._controller, None
            if controller is not None:
                controller.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SmtpSink {self._host}:{self._port} {state}, {len(self.messages)} messages>"

    # -- received mail -----------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A snapshot (copy) of the messages accepted since the last :meth:`clear`."""
        with self._cond:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """How many client connections were opened since the last :meth:`clear`."""
        with self._cond:
            return self._connections

    def clear(self) -> None:
        """Forget received messages, the connection count and all scripted faults."""
        with self._cond:
            self._connections = 0
            self._messages.clear()
            self._rejections.clear()
            self._data_failures.clear()
            self.data_delay = 0.0
            self._hold_after = self._meet = None
            self.held.clear()
            self.met.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages have been accepted in total.

        Returns:
            A snapshot of all messages received so far (at least ``count`` of them).

        Raises:
            TimeoutError: If fewer than ``count`` messages arrived within ``timeout``
                seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} message(s) within {timeout}s, got {len(self._messages)}"
                )
            return list(self._messages)

    # -- scripted faults ---------------------------------------------------------------

    def reject_recipient(
        self, addr: str, code: int = 550, text: str = "5.1.1 Mailbox unavailable"
    ) -> None:
        """Answer ``RCPT TO:<addr>`` with ``code text`` (case-insensitive address match).

        Stays in force until :meth:`allow_recipient` or :meth:`clear`.

        Raises:
            ValueError: If ``code`` is not a 4xx/5xx SMTP reply code.
        """
        _check_code(code, 400, 599, "code")
        with self._cond:
            self._rejections[addr.casefold()] = f"{code} {text}"

    def allow_recipient(self, addr: str) -> None:
        """Undo :meth:`reject_recipient` for ``addr``."""
        with self._cond:
            self._rejections.pop(addr.casefold(), None)

    def fail_next(
        self, n: int = 1, code: int = 451, text: str = "4.3.0 Temporary failure, try again"
    ) -> None:
        """Answer the next ``n`` ``DATA`` commands with ``code text`` instead of accepting.

        Calls accumulate: ``fail_next(1); fail_next(2)`` fails the next three messages.

        Raises:
            ValueError: If ``n`` is negative or ``code`` is not a 4xx/5xx reply code.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        _check_code(code, 400, 599, "code")
        with self._cond:
            self._data_failures.extend([f"{code} {text}"] * n)

    # -- called by the handler (event-loop thread) -------------------------------------

    def _rejection_for(self, address: str) -> str | None:
        with self._cond:
            return self._rejections.get(address.casefold())

    def _take_data_failure(self) -> str | None:
        with self._cond:
            return self._data_failures.pop(0) if self._data_failures else None

    def _count_connection(self) -> None:
        with self._cond:
            self._connections += 1

    def hold_after(self, n: int) -> None:
        """Accept `n` messages, then keep every further one waiting in ``DATA`` (and set
        :attr:`held`) until :meth:`release`: a client is caught mid-batch, on any machine."""
        with self._cond:
            self._hold_after = n

    def release(self) -> None:
        """End :meth:`hold_after`: held and later messages are accepted."""
        with self._cond:
            self._hold_after = None

    def meet(self, n: int) -> None:
        """Keep each message waiting in ``DATA`` until `n` connections are in ``DATA`` at
        once (then set :attr:`met` and stop waiting): proof that `n` clients send together."""
        with self._cond:
            self._meet = n

    def _must_wait(self, session: Session) -> bool:
        with self._cond:
            if self._hold_after is not None and len(self._messages) >= self._hold_after:
                self.held.set()
                return True
            if self._meet is not None:
                self._in_data.add(id(session))
                if len(self._in_data) >= self._meet:
                    self._meet = None
                    self.met.set()
                else:
                    return True
            self._in_data.discard(id(session))
            return False

    def _record(self, message: ReceivedMessage) -> None:
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()
