"""The receivers of the soak, in a process of their own: `python -m soak.sinks`.

- an SMTP server (aiosmtpd, tests/support/smtp_server.py's `SmtpSink`) recording every
  message it accepts: its Message-ID, recipient and time (and the text of messages to the
  soak's live members, whose sign-in codes the load reads back);
- the Twilio stand-in (tests/support/fake_twilio.py's `FakeTwilio`) recording every SMS;
- a webhook receiver recording every delivery with its event id and the time it arrived;
- a control API on a fourth port: read a code, take the SMTP server down for a while, make
  the stand-in answer 500 then 429 for a while, and fetch everything recorded.

It prints one JSON line with the four ports once everything listens, and runs until SIGTERM.
Running apart from Locust keeps gevent's monkey-patching away from these threaded servers, and
their CPU away from the load generator's measurements.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
from email.parser import BytesHeaderParser
from email.policy import compat32
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.fake_twilio import FakeTwilio, _Script  # noqa: E402
from tests.support.smtp_server import ReceivedMessage, SmtpSink  # noqa: E402

# Messages to these addresses and numbers keep their text (the load reads sign-in codes from
# them); the 50,000 seeded members' notices are only counted.
LIVE_MARK = "@live.example.com"
CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")
# The header block only, as written (no header parsed into objects): the Message-ID is all the
# checks need of a notice.
HEADERS = BytesHeaderParser(policy=compat32)


def _text_of(message) -> str:
    part = message.get_body(preferencelist=("plain",)) if message.is_multipart() else message
    try:
        return part.get_content() if part is not None else ""
    except (LookupError, KeyError):
        return ""


class RecordingSmtpSink(SmtpSink):
    """`SmtpSink` that keeps, per message, only what the checks need: 50,000 notices would
    otherwise hold every body in memory, and parsing each in full would make this one process
    slower than the two workers that send to it. Only a live member's message (a sign-in code)
    is parsed."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[str, str, float]] = []  # (message id, recipient, time)
        # live recipient -> (text of the latest message, when it arrived)
        self.texts: dict[str, tuple[str, float]] = {}

    def _record(self, message: ReceivedMessage) -> None:
        head = message.data.split(b"\r\n\r\n", 1)[0]
        message_id = (HEADERS.parsebytes(head).get("Message-ID") or "").strip()
        with self._cond:
            for rcpt in message.rcpt_tos:
                self.received.append((message_id, rcpt.lower(), message.received_at))
                if LIVE_MARK in rcpt:
                    self.texts[rcpt.lower()] = (_text_of(message.message), message.received_at)
            self._cond.notify_all()


class FlakyTwilio(FakeTwilio):
    """`FakeTwilio` that answers 500 (then 429) to every request inside a failure window,
    and records only what the checks need."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail_from = self.fail_until = 0.0
        self.refused = {500: 0, 429: 0}

    def fail_for(self, seconds: float) -> None:
        """The next `seconds`: the first half answers 500, the second half 429."""
        with self._cond:
            self.fail_from = time.time()
            self.fail_until = self.fail_from + seconds

    def _next_script(self) -> _Script:
        now = time.time()
        with self._cond:
            if now < self.fail_until:
                status = 500 if now < (self.fail_from + self.fail_until) / 2 else 429
                self.refused[status] += 1
                return _Script(status=status, retry_after=1 if status == 429 else None)
        return super()._next_script()

    def _log_request(self, request) -> None:
        pass  # every request kept would be 100,000 dicts of headers; messages are enough

    def compact(self) -> list[dict]:
        with self._cond:
            return [
                {"to": m["to"], "sid": m["sid"], "at": m["received_at"], "body": m["body"]}
                for m in self._messages
            ]


class WebhookReceiver:
    """Accepts every POST with 204 and records its event id, body and arrival time."""

    def __init__(self) -> None:
        self.deliveries: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                at = time.time()
                try:
                    event = json.loads(body)
                except ValueError:
                    event = {}
                with receiver.lock:
                    receiver.deliveries.append(
                        {
                            "event_id": self.headers.get("X-Consent-Event-Id"),
                            "type": self.headers.get("X-Consent-Event-Type"),
                            "created_at": event.get("created_at"),
                            "method": (event.get("consent") or {}).get("method"),
                            "at": at,
                        }
                    )
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Sinks:
    def __init__(self) -> None:
        self.smtp = RecordingSmtpSink(server_hostname="smtp.soak.test")
        self.smtp.start()
        self.twilio = FlakyTwilio()
        self.twilio.start()
        self.webhooks = WebhookReceiver()
        self.smtp_down: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def take_smtp_down(self, seconds: float) -> None:
        """Stop the SMTP server now and start it again after `seconds` (on the same port)."""
        started = time.time()
        self.smtp.stop()

        def back() -> None:
            time.sleep(seconds)
            self.smtp.start()
            with self._lock:
                self.smtp_down.append((started, time.time()))

        threading.Thread(target=back, daemon=True).start()

    def code_for(self, recipient: str, since: float) -> dict:
        """The code in the latest message to `recipient` (an address or a number) that
        arrived at or after `since`."""
        recipient = recipient.lower()
        text = None
        with self.smtp._cond:
            found = self.smtp.texts.get(recipient)
        if found is not None and found[1] >= since:
            text = found[0]
        if text is None:
            with self.twilio._cond:
                for message in reversed(self.twilio._messages):
                    if message["received_at"] < since:
                        break
                    if message["to"] == recipient:
                        text = message["body"] or ""
                        break
        codes = CODE.findall(text or "")
        return {"code": codes[-1] if codes else None}

    def report(self) -> dict:
        with self.smtp._cond:
            email = list(self.smtp.received)
        with self.webhooks.lock:
            hooks = list(self.webhooks.deliveries)
        return {
            "email": email,
            "sms": self.twilio.compact(),
            "sms_refused": dict(self.twilio.refused),
            "webhooks": hooks,
            "smtp_down": list(self.smtp_down),
            "twilio_errors": [repr(e) for e in self.twilio.errors],
        }

    def stop(self) -> None:
        self.smtp.stop()
        self.twilio.stop()
        self.webhooks.server.shutdown()


def control_server(sinks: Sinks) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, document, status: int = 200) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _query(self) -> tuple[str, dict[str, str]]:
            parts = urlsplit(self.path)
            return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}

        def do_GET(self) -> None:  # noqa: N802
            path, query = self._query()
            if path == "/code":
                self._answer(sinks.code_for(query.get("to", ""), float(query.get("since", 0))))
            elif path == "/report":
                self._answer(sinks.report())
            else:
                self._answer({"error": "not found"}, 404)

        def do_POST(self) -> None:  # noqa: N802
            path, query = self._query()
            seconds = float(query.get("seconds", "30"))
            if path == "/smtp/down":
                sinks.take_smtp_down(seconds)
            elif path == "/twilio/fail":
                sinks.twilio.fail_for(seconds)
            else:
                self._answer({"error": "not found"}, 404)
                return
            self._answer({"ok": True, "at": time.time()})

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    sinks = Sinks()
    control = control_server(sinks)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=control.serve_forever, daemon=True).start()
    ports = {
        "smtp": sinks.smtp.port,
        "twilio": sinks.twilio.port,
        "webhook": sinks.webhooks.port,
        "control": control.server_address[1],
        "account_sid": sinks.twilio.account_sid,
        "auth_token": sinks.twilio.auth_token,
    }
    print(json.dumps(ports), flush=True)
    stop.wait()
    control.shutdown()
    sinks.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
