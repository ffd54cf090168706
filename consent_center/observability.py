"""Request ids, logs and the per-request measurement, in one place.

Every request gets an id: the caller's `X-Request-Id` when it is well-formed (a load
balancer's), else a new random one. It is returned in the response's `X-Request-Id`, is on
every log line written while the request runs, and is stored on each outbox row the request
writes (the column's default reads it, `current_request_id`), so the worker's log line for a
message and the webhook it posts (`X-Request-Id`) name the request that caused them.

`RequestObserver` is a WSGI middleware around the whole app, the API mounted beside it included,
so every request is measured once (`metrics.count_request`) and logged once, by endpoint name.

Production logs one JSON object per line (`LOG_FORMAT=json`); development keeps Flask's
readable lines. Log lines carry no personal data: no address, number, code or link; the
database's error messages leave out statement parameters in production (`hide_parameters`).

This module imports no prometheus_client: `prepare_multiprocess` must run before that import.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path

from flask import request
from flask.logging import default_handler
from werkzeug.wsgi import ClosingIterator

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
REQUEST_ID_HEADER = "X-Request-Id"
# The endpoint a request was routed to: set by the site's and the API's teardown
# (`name_endpoints`).
ENDPOINT_KEY = "consent_center.endpoint"
REQUEST_ID_KEY = "consent_center.request_id"
# An incoming id is kept only if it looks like one (a UUID, a hex or base64url token): never
# a value that could smuggle text into log lines or headers.
WELL_FORMED_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,63}")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
access_log = logging.getLogger("consent_center.access")


def prepare_multiprocess(metrics_dir: str | None = None) -> str | None:
    """Point prometheus_client at this process tree's own directory, `METRICS_DIR/<pid>`.

    Must run before prometheus_client is first imported (it reads `PROMETHEUS_MULTIPROC_DIR`
    then). A process whose parent already chose a directory (a gunicorn worker) keeps it.

    :returns: the directory, or None when multiprocess mode is off (no `METRICS_DIR`).
    """
    if os.environ.get(MULTIPROC_ENV):
        return os.environ[MULTIPROC_ENV]
    root = metrics_dir if metrics_dir is not None else os.environ.get("METRICS_DIR")
    if not root:
        return None
    path = Path(root) / str(os.getpid())
    shutil.rmtree(path, ignore_errors=True)  # a reused pid's leftovers
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return str(path)


def current_request_id() -> str | None:
    """The id of the request (or message being sent) this code runs for, if any."""
    return _request_id.get()


def set_request_id(value: str | None) -> None:
    """Name the work that follows (the worker, for each message it sends)."""
    _request_id.set(value)


def request_id_from(environ: dict) -> str:
    """The caller's `X-Request-Id` if well-formed, else a new random id."""
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    if incoming and WELL_FORMED_ID.fullmatch(incoming):
        return incoming
    return secrets.token_hex(16)


class RequestObserver:
    """WSGI middleware: gives each request its id, and measures and logs it once it ends."""

    def __init__(self, wsgi_app: Callable, begin: Callable, count: Callable) -> None:
        self.wsgi_app = wsgi_app
        self.begin, self.count = begin, count

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        self.begin()
        request_id = environ[REQUEST_ID_KEY] = request_id_from(environ)
        _request_id.set(request_id)
        status = ["500"]

        def start_with_id(code: str, headers: list, exc_info=None):
            status[0] = code[:3]
            headers.append((REQUEST_ID_HEADER, request_id))
            return start_response(code, headers, exc_info)

        def finish() -> None:
            self._finish(environ, status[0], time.perf_counter() - started)

        try:
            body = self.wsgi_app(environ, start_with_id)
        except BaseException:
            finish()
            raise
        return ClosingIterator(body, finish)

    def _finish(self, environ: dict, status: str, seconds: float) -> None:
        endpoint = environ.get(ENDPOINT_KEY) or "unmatched"
        method = environ.get("REQUEST_METHOD", "")
        self.count(endpoint, method, status, seconds)
        if access_log.isEnabledFor(logging.INFO):
            duration_ms = round(seconds * 1000, 2)
            # The record made directly: `info()` would first walk the stack for the caller's
            # file and line, a third of the line's cost, to say "observability.py".
            access_log.handle(
                access_log.makeRecord(
                    access_log.name, logging.INFO, __file__, 0, "%s %s %s %.1f ms",
                    (method, endpoint, status, duration_ms), None,
                    extra={"method": method, "endpoint": endpoint, "status": int(status),
                           "duration_ms": duration_ms},
                )
            )  # fmt: skip
        _request_id.set(None)


# --- Logs --------------------------------------------------------------------------------

# Fields a log call may add with `extra=`; anything else a record carries is left out.
EXTRA_FIELDS = ("method", "endpoint", "status", "duration_ms", "channel", "kind", "outcome",
                "notification", "event")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and the request's
    method, endpoint, status and duration_ms when the record has them."""

    _encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
    _second: tuple[int, str] = (-1, "")

    def _time(self, created: float) -> str:
        """ISO 8601 UTC with milliseconds; the part up to the second is made once a second."""
        second = int(created)
        if self._second[0] != second:
            stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, stamp)
        return f"{self._second[1]}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or _request_id.get(),
        }
        for name in EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                document[name] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return self._encode(document)


class _RequestIdFilter(logging.Filter):
    """Readable logs: adds the request id to each record (`%(request_id)s`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = _request_id.get() or "-"
        return True


READABLE = "[%(asctime)s] %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def configure_logging(log_format: str) -> None:
    """Send the app's logs to stderr: JSON lines (`json`) or readable lines (`text`).

    Replaces the handler this function installed before (tests create many apps).
    """
    logger = logging.getLogger("consent_center")  # the app's logger (`app.logger`) too
    for handler in list(logger.handlers):
        if getattr(handler, "_consent_center", False) or handler is default_handler:
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._consent_center = True
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.addFilter(_RequestIdFilter())
        handler.setFormatter(logging.Formatter(READABLE))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def init_app(app, begin: Callable[[], None], count: Callable) -> None:
    """Logs and the request middleware, around the site and the API mounted beside it
    (`web/api`, which names its endpoints with `name_endpoints` too).

    :param begin: called as a request starts (`metrics.IN_FLIGHT.inc`).
    :param count: called with (endpoint, method, status, seconds) as it ends
        (`metrics.count_request`).
    """
    configure_logging(app.config.get("LOG_FORMAT", "text"))
    name_endpoints(app)
    app.wsgi_app = RequestObserver(app.wsgi_app, begin, count)


def name_endpoints(app) -> None:
    """Have `app` tell the middleware the endpoint each request was routed to."""

    @app.teardown_request
    def name_the_endpoint(_error) -> None:
        # Always runs, after errors too; the middleware reads it once the body is sent.
        request.environ[ENDPOINT_KEY] = request.endpoint
