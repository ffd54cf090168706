"""A local HTTP stand-in for Twilio's REST Messages API: :class:`FakeTwilio`.

It serves two Programmable Messaging calls, in Twilio's wire format, on
127.0.0.1 (ephemeral port) from a ``ThreadingHTTPServer`` in a daemon thread:

* ``POST /2010-04-01/Accounts/<AccountSid>/Messages.json`` (form-encoded ``To``, ``From``
  or ``MessagingServiceSid``, ``Body``/``MediaUrl``/``ContentSid``, ``StatusCallback``,
  ...) answers ``201`` with a Message resource (``sid`` "SM" + 32 hex, ``status`` "queued",
  or "accepted" when only a Messaging Service is given, ``num_segments``, ...).
* ``GET /2010-04-01/Accounts/<AccountSid>/Messages/<MessageSid>.json`` answers ``200``
  with a message created earlier.

Every request must carry HTTP Basic auth equal to the configured account SID and auth
token, otherwise ``401`` with code 20003, as Twilio does. Errors use Twilio's legacy JSON
shape ``{"code", "message", "more_info", "status"}``, which the SDK turns into
``TwilioRestException``; ``fail_next(..., problem_details=True)`` sends the RFC 9457 shape
that the SDK (>= 9.10) turns into ``TwilioServiceException`` instead.

Pointing the real SDK here (checked in twilio 9.13.0 source): every product is a
``twilio.base.domain.Domain`` whose ``absolute_url()`` joins its ``base_url`` attribute
(``"https://api.twilio.com"`` for ``client.api``) with the path, so::

    http_client = TwilioHttpClient(timeout=2)
    client = Client(fake.account_sid, fake.auth_token, http_client=http_client)
    client.api.base_url = fake.base_url            # the Messages API lives on client.api
    client.messages.create(to=..., from_=..., body=..., status_callback=...)
    ...
    http_client.session.close()                    # the SDK never closes its session

Traps found while checking the SDK:

* ``Client.get_hostname()`` rewrites the URL's host whenever an edge or region is set, and
  ``Client`` reads them from ``TWILIO_EDGE``/``TWILIO_REGION``; "127.0.0.1:PORT" splits into
  four dot-separated pieces and is garbled. Clear both variables in tests
  (``monkeypatch.delenv``). Passing ``environment={}`` does *not* help: the SDK uses
  ``environment or os.environ``, so an empty mapping falls back to ``os.environ``.
* ``requests`` honours ``HTTP_PROXY``/``NO_PROXY``; a proxy in the environment would
  receive the local requests. Clear proxy variables in tests as well.
* ``client.api.messages`` is deprecated (``DeprecationWarning``); use ``client.messages``
  or ``client.api.account.messages``.
* A client-side timeout is *not* a ``TwilioException``: ``TwilioHttpClient`` lets
  ``requests.exceptions.ReadTimeout`` (a ``requests.exceptions.Timeout``) escape, and a
  dropped connection gives ``requests.exceptions.ConnectionError``.

Scripting: :meth:`FakeTwilio.fail_next`, :meth:`FakeTwilio.hang_next` and
:meth:`FakeTwilio.drop_next` append to one FIFO queue; each authenticated request takes the
next entry (requests that fail Basic auth do not consume entries).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any, Self, TypedDict
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "FakeTwilio",
    "RecordedMessage",
    "RecordedRequest",
]

_log = logging.getLogger(__name__)

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"
API_VERSION = "2010-04-01"

_MESSAGES_RE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE_RE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$")

# Default human-readable messages, as Twilio words them.
_ERROR_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service is unavailable. Please try again",
    21211: "Invalid 'To' Phone Number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone "
    "number for this destination.",
    21608: "The number is unverified. Trial accounts cannot send messages to unverified numbers.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21635: "'To' number cannot be a landline",
}
# Twilio error code used when fail_next() is given a status but no code.
_DEFAULT_CODE_FOR_STATUS: dict[int, int] = {
    401: 20003,
    404: 20404,
    429: 20429,
    500: 20500,
    503: 20503,
}

# GSM 03.38: basic characters cost one septet, extension characters two.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """Return how many SMS segments ``body`` needs (GSM-7 160/153, else UCS-2 70/67)."""
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in body):
        units = sum(2 if ch in _GSM7_EXTENSION else 1 for ch in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def error_body(
    status: int, code: int | None, message: str | None = None, *, problem_details: bool = False
) -> dict[str, Any]:
    """Build a Twilio error payload.

    Args:
        status: HTTP status.
        code: Twilio error code (``None`` omits it; the SDK then reports the status).
        message: Human-readable text; defaults to Twilio's wording for ``code``
            (in the RFC 9457 shape it becomes ``detail``, the wording is the ``title``).
        problem_details: Use the RFC 9457 shape (``type``/``title``/``status``/``code``)
            instead of the legacy ``code``/``message``/``more_info``/``status`` shape.
    """
    standard = _ERROR_MESSAGES.get(code or 0) or f"HTTP {status} error"
    more_info = f"https://www.twilio.com/docs/errors/{code}" if code is not None else None
    if problem_details:
        problem: dict[str, Any] = {
            "type": more_info or "about:blank",
            "title": standard,
            "status": status,
            "code": code if code is not None else status,
        }
        if message:
            problem["detail"] = message
        return problem
    body: dict[str, Any] = {
        "message": message or standard,
        "more_info": more_info,
        "status": status,
    }
    if code is not None:
        body["code"] = code
    return body


class RecordedMessage(TypedDict):
    """A message the stand-in accepted (answered 201)."""

    sid: str
    account_sid: str
    to: str | None
    from_: str | None
    messaging_service_sid: str | None
    body: str | None
    media_urls: list[str]
    status_callback: str | None
    status: str
    form: dict[str, list[str]]
    headers: dict[str, str]
    received_at: float


class RecordedRequest(TypedDict):
    """Any request the stand-in answered (or dropped), in arrival order."""

    method: str
    path: str
    form: dict[str, list[str]]
    headers: dict[str, str]
    status: int | None  # None: the connection was dropped without an answer


@dataclass(frozen=True)
class _Script:
    """One scripted reaction, taken by the next authenticated request."""

    delay: float = 0.0
    status: int | None = None  # None: handle the request normally
    code: int | None = None
    message: str | None = None
    problem_details: bool = False
    retry_after: int | None = None
    drop: bool = False


class _Handler(BaseHTTPRequestHandler):
    """Request handler; all state lives on ``self.server.fake``."""

    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection keeps shutdown simple
    server_version = "FakeTwilio/1.0"
    timeout = 10  # a silent client cannot block stop() for long

    # Method names are fixed by http.server.
    def do_GET(self) -> None:
        """Fetch a message."""
        self.server.fake._handle(self, "GET")

    def do_POST(self) -> None:
        """Create a message."""
        self.server.fake._handle(self, "POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Log to ``logging`` instead of stderr."""
        _log.debug("%s - " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    """Threading server whose ``server_close()`` joins all handler threads."""

    block_on_close = True
    fake: FakeTwilio

    def server_bind(self) -> None:
        """Bind without ``HTTPServer.server_bind``'s reverse DNS lookup (``getfqdn``)."""
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Record handler errors; a client that went away (timed out) is not an error."""
        exc = sys.exc_info()[1]
        if exc is None or isinstance(exc, ConnectionError | TimeoutError):
            return
        _log.error("FakeTwilio handler error for %s", client_address, exc_info=exc)
        self.fake._record_error(exc)


class FakeTwilio:
    """Twilio Messages API stand-in with recorded messages and scripted failures.

    Public API:
        ``start()``, ``stop()``, ``running``, ``host``, ``port``, ``base_url``,
        ``account_sid``, ``auth_token``, ``messages``, ``requests``, ``errors``,
        ``clear()``, ``wait_for(count, timeout)``, ``wait_for_requests(count, timeout)``,
        ``wait_for_scripts(timeout)``,
        ``fail_next(status, code, message, ...)``, ``hang_next(seconds, ...)``,
        ``drop_next(times)``, ``pending_scripts``; usable as a context manager.
    """

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Configure the stand-in; nothing listens until :meth:`start`.

        Args:
            account_sid: The only account SID accepted (Basic auth user and URL path).
            auth_token: The Basic auth password.
            host: Address to bind (IPv4 loopback by default).
            port: Port to bind; 0 picks a free one on the first start, which later starts
                reuse.
        """
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._messages: list[RecordedMessage] = []
        self._requests: list[RecordedRequest] = []
        self._scripts: list[_Script] = []
        self._errors: list[BaseException] = []

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The bound address."""
        return self._host

    @property
    def port(self) -> int:
        """The listening port (0 before the first start when created with port=0)."""
        return self._port

    @property
    def base_url(self) -> str:
        """URL to assign to ``client.api.base_url``, e.g. ``"http://127.0.0.1:PORT"``."""
        return f"http://{self._host}:{self._port}"

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._server is not None

    def start(self) -> None:
        """Start serving in a daemon thread.

        Raises:
            RuntimeError: If already running.
            OSError: If the port cannot be bound.
        """
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError("FakeTwilio is already running")
            server = _Server((self._host, self._port), _Handler)
            server.fake = self
            self._port = server.server_port
            self._stopping.clear()
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"FakeTwilio:{self._port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop serving: wake hanging requests (their connections close unanswered),
        close the socket and join every thread. Does nothing when not running."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            if server is None:
                return
            self._stopping.set()
            server.shutdown()
            server.server_close()  # joins handler threads (block_on_close)
            if thread is not None:
                thread.join()

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
        return f"<FakeTwilio {self.base_url} {state}, {len(self.messages)} messages>"

    # -- recorded traffic --------------------------------------------------------------

    @property
    def messages(self) -> list[RecordedMessage]:
        """A snapshot of the messages accepted (201) since the last :meth:`clear`."""
        with self._cond:
            return list(self._messages)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received since the last :meth:`clear`."""
        with self._cond:
            return list(self._requests)

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected exceptions raised inside the server (should stay empty)."""
        with self._cond:
            return list(self._errors)

    @property
    def pending_scripts(self) -> int:
        """How many scripted reactions are still queued."""
        with self._cond:
            return len(self._scripts)

    def clear(self) -> None:
        """Forget recorded messages, requests, errors and queued scripts."""
        with self._cond:
            self._messages.clear()
            self._requests.clear()
            self._scripts.clear()
            self._errors.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedMessage]:
        """Block until at least ``count`` messages have been accepted; return them all.

        Raises:
            TimeoutError: If fewer arrived within ``timeout`` seconds.
        """
        return self._wait(self._messages, count, timeout, "message")

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests have been answered; return them all.

        Raises:
            TimeoutError: If fewer arrived within ``timeout`` seconds.
        """
        return self._wait(self._requests, count, timeout, "request")

    def wait_for_scripts(self, timeout: float = 5.0) -> None:
        """Block until every queued script has been taken by a request.

        A request takes its script on arrival, so this also tells that a hanging request
        has reached the server.

        Raises:
            TimeoutError: If scripts are still queued after ``timeout`` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: not self._scripts, timeout):
                raise TimeoutError(f"{len(self._scripts)} script(s) still queued after {timeout}s")

    def _wait(self, items: list[Any], count: int, timeout: float, what: str) -> list[Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(items) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} {what}(s) within {timeout}s, got {len(items)}"
                )
            return list(items)

    # -- scripting ---------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 500,
        code: int | None = None,
        message: str | None = None,
        *,
        times: int = 1,
        retry_after: int | None = None,
        problem_details: bool = False,
    ) -> None:
        """Answer the next ``times`` requests with an error instead of handling them.

        Examples: ``fail_next(429, 20429)``, ``fail_next(500)`` (code 20500),
        ``fail_next(400, 21211)`` (invalid To), ``fail_next(400, 21610)`` (unsubscribed),
        ``fail_next(400, 21614)`` (not a mobile number).

        Args:
            status: HTTP status (400-599).
            code: Twilio error code; defaults to Twilio's code for the status
                (401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503).
            message: Error text; defaults to Twilio's wording for ``code``.
            times: How many consecutive requests get this answer.
            retry_after: Optional ``Retry-After`` header value in seconds.
            problem_details: Answer in RFC 9457 shape (SDK raises
                ``TwilioServiceException`` instead of ``TwilioRestException``).
        """
        if not 400 <= status <= 599:
            raise ValueError(f"status must be 4xx or 5xx, got {status}")
        if code is None:
            code = _DEFAULT_CODE_FOR_STATUS.get(status)
        script = _Script(
            status=status,
            code=code,
            message=message,
            problem_details=problem_details,
            retry_after=retry_after,
        )
        self._enqueue(script, times)

    def hang_next(
        self,
        seconds: float,
        *,
        times: int = 1,
        status: int | None = None,
        code: int | None = None,
    ) -> None:
        """Delay the next ``times`` requests by ``seconds`` before answering.

        After the delay the request is handled normally (so a message the client gave up
        on is still "sent" and recorded, as with the real Twilio), or answered with
        ``status``/``code`` if given. :meth:`stop` cuts a hang short and closes the
        connection unanswered.
        """
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        if status is not None and not 400 <= status <= 599:
            raise ValueError(f"status must be 4xx or 5xx, got {status}")
        if status is not None and code is None:
            code = _DEFAULT_CODE_FOR_STATUS.get(status)
        self._enqueue(_Script(delay=seconds, status=status, code=code), times)

    def drop_next(self, times: int = 1) -> None:
        """Close the next ``times`` connections without answering (the request is read
        first); the SDK raises ``requests.exceptions.ConnectionError``."""
        self._enqueue(_Script(drop=True), times)

    def _enqueue(self, script: _Script, times: int) -> None:
        if times < 0:
            raise ValueError(f"times must be >= 0, got {times}")
        with self._cond:
            self._scripts.extend([script] * times)

    # -- request handling (handler threads) --------------------------------------------

    def _handle(self, handler: _Handler, method: str) -> None:
        path = urlsplit(handler.path).path
        headers = dict(handler.headers.items())
        form: dict[str, list[str]] = {}
        if method == "POST":
            length = int(handler.headers.get("Content-Length") or 0)
            raw = handler.rfile.read(length) if length else b""
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        request: RecordedRequest = {
            "method": method,
            "path": path,
            "form": form,
            "headers": headers,
            "status": None,
        }

        if not self._authorized(handler.headers.get("Authorization")):
            self._respond(
                handler,
                request,
                401,
                error_body(401, 20003),
                extra_headers={"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
            return

        script = self._next_script()
        if script.delay and self._stopping.wait(script.delay):
            self._drop(handler, request)  # stop() during a hang: hang up
            return
        if script.drop:
            self._drop(handler, request)
            return
        if script.status is not None:
            extra = {}
            if script.retry_after is not None:
                extra["Retry-After"] = str(script.retry_after)
            body = error_body(
                script.status,
                script.code,
                script.message,
                problem_details=script.problem_details,
            )
            self._respond(handler, request, script.status, body, extra_headers=extra)
            return

        self._route(handler, method, path, form, headers, request)

    def _route(
        self,
        handler: _Handler,
        method: str,
        path: str,
        form: dict[str, list[str]],
        headers: dict[str, str],
        request: RecordedRequest,
    ) -> None:
        if method == "POST" and (match := _MESSAGES_RE.match(path)):
            if match["account"] != self.account_sid:
                self._not_found(handler, request, path)
                return
            self._create_message(handler, form, headers, request)
            return
        if method == "GET" and (match := _MESSAGE_RE.match(path)):
            if match["account"] == self.account_sid:
                with self._cond:
                    found = next((m for m in self._messages if m["sid"] == match["sid"]), None)
                if found is not None:
                    self._respond(handler, request, 200, self._resource(found))
                    return
        self._not_found(handler, request, path)

    def _create_message(
        self,
        handler: _Handler,
        form: dict[str, list[str]],
        headers: dict[str, str],
        request: RecordedRequest,
    ) -> None:
        def first(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values else None

        to, from_, service = first("To"), first("From"), first("MessagingServiceSid")
        body, media = first("Body"), form.get("MediaUrl", [])
        if not to:
            self._respond(handler, request, 400, error_body(400, 21604))
            return
        if not from_ and not service:
            self._respond(handler, request, 400, error_body(400, 21603))
            return
        if not body and not media and not first("ContentSid"):
            self._respond(handler, request, 400, error_body(400, 21602))
            return

        message: RecordedMessage = {
            "sid": "SM" + uuid.uuid4().hex,
            "account_sid": self.account_sid,
            "to": to,
            "from_": from_,
            "messaging_service_sid": service,
            "body": body,
            "media_urls": list(media),
            "status_callback": first("StatusCallback"),
            "status": "queued" if from_ else "accepted",
            "form": form,
            "headers": headers,
            "received_at": time.time(),
        }
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()
        self._respond(handler, request, 201, self._resource(message))

    def _resource(self, message: RecordedMessage) -> dict[str, Any]:
        """Render a recorded message as Twilio's Message resource JSON."""
        created = format_datetime(
            datetime.fromtimestamp(message["received_at"], UTC).replace(microsecond=0)
        )
        uri = f"/{API_VERSION}/Accounts/{message['account_sid']}/Messages/{message['sid']}"
        return {
            "account_sid": message["account_sid"],
            "api_version": API_VERSION,
            "body": message["body"] or "",
            "date_created": created,
            "date_sent": None,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": message["from_"],
            "messaging_service_sid": message["messaging_service_sid"],
            "num_media": str(len(message["media_urls"])),
            "num_segments": str(num_segments(message["body"] or "")),
            "price": None,
            "price_unit": "USD",
            "sid": message["sid"],
            "status": message["status"],
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": message["to"],
            "uri": f"{uri}.json",
        }

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        return user == self.account_sid and password == self.auth_token

    def _next_script(self) -> _Script:
        with self._cond:
            if not self._scripts:
                return _Script()
            script = self._scripts.pop(0)
            self._cond.notify_all()
            return script

    def _not_found(self, handler: _Handler, request: RecordedRequest, path: str) -> None:
        text = f"The requested resource {path} was not found"
        self._respond(handler, request, 404, error_body(404, 20404, text))

    def _record_error(self, exc: BaseException) -> None:
        with self._cond:
            self._errors.append(exc)

    def _log_request(self, request: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(request)
            self._cond.notify_all()

    def _drop(self, handler: _Handler, request: RecordedRequest) -> None:
        handler.close_connection = True
        self._log_request(request)

    def _respond(
        self,
        handler: _Handler,
        request: RecordedRequest,
        status: int,
        payload: dict[str, Any],
        *,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode("utf-8")
        request["status"] = status
        self._log_request(request)
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("Twilio-Request-Id", "RQ" + uuid.uuid4().hex)
            for name, value in (extra_headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired during hang_next)
