"""Helpers for the API tests: tokens, consents and a receiver for webhooks."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import select

from consent_center.clock import utcnow
from consent_center.domain import Actor, Method
from consent_center.extensions import db
from consent_center.services.api_tokens import SCOPES, create_api_token
from consent_center.services.consents import needs_second_confirmation, set_consent
from consent_center.services.usability import is_minor

_names = iter(range(1, 10**9))


def make_token(*scopes: str) -> str:
    """A live token with `scopes` (all of them by default), committed."""
    issued = create_api_token(f"system-{next(_names)}", scopes or SCOPES)
    db.session.commit()
    return issued.token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def grant(member, purpose: str, granted: bool = True, method: str = Method.FORM):
    """Record the member's answer; a minor's yes is given by a guardian (only a guardian may
    grant a minor's optional purpose), advertising through the second confirmation."""
    if granted and is_minor(member):
        guardian = _guardian_of(member)
        if needs_second_confirmation(member, purpose):
            method = Method.GUARDIAN_CONFIRMATION
        view = set_consent(member, purpose, True, actor=Actor.GUARDIAN, method=method,
                           actor_member=guardian)  # fmt: skip
    else:
        view = set_consent(member, purpose, granted, actor=Actor.MEMBER, method=method,
                           actor_member=member)  # fmt: skip
    db.session.commit()
    return ledger_event(view)


def ledger_event(view):
    """The ledger event behind a `ConsentView` that `set_consent` returned."""
    from consent_center.models import ConsentEvent

    return db.session.scalars(
        select(ConsentEvent).where(ConsentEvent.receipt_id == view.receipt_id)
    ).one()


def _guardian_of(minor):
    from consent_center.models import GuardianLink, Member

    link = db.session.scalars(select(GuardianLink).where(
        GuardianLink.minor_id == minor.id, GuardianLink.status == "approved")).first()
    if link is not None:
        return db.session.get(Member, link.guardian_id)
    n = next(_names)
    guardian = Member(name=f"Guardian {n}", email=f"guardian{n}@example.org", status="active",
                      locale="en", email_verified_at=utcnow())
    db.session.add(guardian)
    db.session.flush()
    db.session.add(GuardianLink(minor_id=minor.id, guardian_id=guardian.id, status="approved"))
    db.session.flush()
    return guardian


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local HTTP server standing in for a downstream system.

    `answers` is a queue of status codes to reply with (then 200 forever); every request is
    recorded, whatever the answer. `delay` seconds pass before each answer (a slow receiver).
    """

    port: int = 0
    answers: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    delay: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/consent"


@contextmanager
def webhook_receiver(*answers: int) -> Iterator[Receiver]:
    receiver = Receiver(answers=list(answers))
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if receiver.delay:
                time.sleep(receiver.delay)
            with lock:
                receiver.received.append(Received(self.path, dict(self.headers), body))
                status = receiver.answers.pop(0) if receiver.answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):  # keep test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
