"""Outgoing webhooks: delivered from the change feed with a cursor per subscription, signed,
retried, in order, erasure notices, and the receivers' verification snippet."""

from __future__ import annotations

import re
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import ChangeEvent, Notification, WebhookSubscription
from consent_center.notify.webhook import deliver_webhooks as deliver
from consent_center.services.erasure import erase_member
from consent_center.services.outgoing_webhooks import add_webhook, remove_webhook
from tests.conftest import make_member
from tests.support.api import grant, webhook_receiver

DOCS = Path(__file__).resolve().parent.parent / "docs" / "webhooks.md"


@pytest.fixture(autouse=True)
def direct_connections(monkeypatch):
    """Deliveries go straight to the local receiver, never through a proxy from the env."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def documented_verifier():
    """The verification function exactly as docs/webhooks.md gives it to receivers."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    [code] = [b for b in blocks if "def verify_consent_center_signature" in b]
    namespace: dict = {}
    exec(compile(code, str(DOCS), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["verify_consent_center_signature"]


def subscribe(url: str, *events: str) -> str:
    new = add_webhook(url, events or ("consent.changed", "member.erased"))
    db.session.commit()
    return new.secret


def subscriptions() -> list[WebhookSubscription]:
    db.session.expire_all()
    return list(db.session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)))


def later(minutes: int = 120) -> None:
    """Skip past any backoff."""
    clock.freeze(clock.utcnow() + timedelta(minutes=minutes))


def test_cli_adds_lists_and_removes_subscriptions(runner, app):
    result = runner.invoke(
        args=["webhooks", "add", "https://crm.example.com/hook", "--events", "member.erased"]
    )
    assert result.exit_code == 0, result.output
    secret = re.search(r"^(whsec_\S+)$", result.output, re.M).group(1)
    sub = db.session.scalars(select(WebhookSubscription)).one()
    assert (sub.events, sub.active, sub.secret) == ("member.erased", True, secret)
    listing = runner.invoke(args=["webhooks", "list"]).output
    assert sub.public_id in listing and "https://crm.example.com/hook" in listing
    assert secret not in listing
    for url, events in [("ftp://x", "member.erased"), ("https://x.example", "nope")]:
        assert runner.invoke(args=["webhooks", "add", url, "--events", events]).exit_code != 0
    result = runner.invoke(args=["webhooks", "remove", sub.public_id])
    assert result.exit_code == 0 and db.session.scalars(select(WebhookSubscription)).first() is None
    assert runner.invoke(args=["webhooks", "remove", sub.public_id]).exit_code != 0


def test_a_toggle_writes_no_outbox_row_and_reads_no_subscription(app, member, policy, client,
                                                                  login_as):
    from tests.support.queries import count_queries

    subscribe("https://a.example/hook")
    login_as(member)
    with count_queries() as statements:
        client.post("/me/consents/advertising", data={"granted": "1"})
    assert not any("webhook_subscription" in s or "notification" in s for s in statements)
    assert db.session.scalars(select(Notification)).all() == []
    assert db.session.scalars(select(ChangeEvent)).all() == []


def test_a_subscription_receives_what_happens_after_it_was_added(app, member, policy):
    grant(member, "trend_analysis")  # before: not for the new receiver
    with webhook_receiver() as receiver:
        subscribe(receiver.url)
        event = grant(member, "advertising")
        assert deliver() == {"sent": 1}
        assert deliver() == {}  # the cursor moved past it
    [got] = receiver.received
    assert got.json["id"] == event.receipt_id and got.json["member_id"] == member.public_id
    assert got.json["consent"] == {
        "purpose": "advertising",
        "granted": True,
        "policy_version": 1,
        "actor": "member",
        "method": "form",
    }


def test_a_subscription_gets_only_its_event_types(app, member, policy):
    with webhook_receiver() as receiver:
        subscribe(receiver.url, "member.erased")
        grant(member, "advertising")
        assert deliver() == {}
        erase_member(member, actor=None, reason="test")
        db.session.commit()
        assert deliver() == {"sent": 1}
    assert [r.json["type"] for r in receiver.received] == ["member.erased"]


def test_deliveries_are_signed_and_verify_with_the_documented_snippet(app, member, policy):
    verify = documented_verifier()
    with webhook_receiver() as receiver:
        secret = subscribe(receiver.url)
        grant(member, "advertising")
        assert deliver() == {"sent": 1}
    [got] = receiver.received
    headers = {k.lower(): v for k, v in got.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["x-consent-event-type"] == "consent.changed"
    assert headers["x-consent-event-id"] == got.json["id"]
    signature = headers["x-consent-signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", signature)
    now = clock.utcnow().timestamp()
    assert verify(secret, signature, got.body, now=now)
    assert not verify(secret, signature, got.body + b" ", now=now)
    assert not verify("whsec_wrong", signature, got.body, now=now)
    assert not verify(secret, signature, got.body, now=now + 3600)  # a replay, much later
    assert not verify(secret, "v1=abc", got.body, now=now)
    [sub] = subscriptions()
    assert (sub.attempts, sub.last_error, sub.lease_until) == (0, None, None)


def test_a_failing_receiver_gets_retries_and_finally_the_event(app, member, policy):
    with webhook_receiver(500, 503) as receiver:
        subscribe(receiver.url)
        grant(member, "advertising")
        assert deliver() == {"pending": 1}
        [sub] = subscriptions()
        assert (sub.attempts, sub.last_error.split(": ")[1]) == (1, "HTTP 500")
        assert deliver() == {}  # backing off: not due yet
        later()
        assert deliver() == {"pending": 1}
        later()
        assert deliver() == {"sent": 1}
    ids = {r.headers["X-Consent-Event-Id"] for r in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1  # the same event, to de-duplicate
    [sub] = subscriptions()
    assert (sub.attempts, sub.next_attempt_at, sub.last_delivered_at is not None) == (0, None, True)


def test_a_receiver_that_never_answers_is_given_up_on_event_by_event(app, member, policy):
    app.config["NOTIFY_MAX_ATTEMPTS"] = 2
    with webhook_receiver(500, 500) as receiver:
        subscribe(receiver.url)
        grant(member, "advertising")
        grant(member, "advertising", False)
        assert deliver() == {"pending": 1}
        later()
        assert deliver() == {"dead": 1, "sent": 1}  # the next event goes on
    granted = [r.json["consent"]["granted"] for r in receiver.received]
    assert granted == [True, True, False]


@pytest.mark.parametrize(
    ("answer", "status"),
    [(400, "failed"), (410, "failed"), (301, "failed"), (408, "pending"), (429, "pending")],
)
def test_client_errors_are_final_except_timeout_and_too_many(app, member, policy, answer, status):
    with webhook_receiver(answer) as receiver:
        subscribe(receiver.url)
        grant(member, "advertising")
        assert deliver() == {status: 1}


def test_an_unreachable_receiver_is_retried(app, member, policy):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subscribe(f"http://127.0.0.1:{port}/hook")
    grant(member, "advertising")
    assert deliver() == {"pending": 1}
    assert subscriptions()[0].last_error.endswith(": ConnectionError")


def test_events_arrive_in_feed_order_and_a_failure_holds_back_only_its_subscription(app, policy):
    first, second = make_member(), make_member()
    with webhook_receiver(500) as failing, webhook_receiver() as healthy:
        subscribe(failing.url)
        subscribe(healthy.url)
        grant(first, "advertising")  # the failing receiver refuses this once
        grant(first, "advertising", False)
        grant(second, "trend_analysis")
        assert deliver() == {"pending": 1, "sent": 3}
        later()
        assert deliver() == {"sent": 3}
    expected = [
        (first.public_id, True),
        (first.public_id, False),
        (second.public_id, True),
    ]
    seen = [(r.json["member_id"], r.json["consent"]["granted"]) for r in failing.received]
    assert seen == [expected[0], *expected]
    assert [(r.json["member_id"], r.json["consent"]["granted"]) for r in healthy.received] == (
        expected
    )


def test_two_workers_never_deliver_one_subscription_side_by_side(app, member, policy):
    with webhook_receiver() as receiver:
        subscribe(receiver.url)
        grant(member, "advertising")
        [sub] = subscriptions()
        sub.lease_until = clock.utcnow() + timedelta(minutes=1)  # another worker holds it
        db.session.commit()
        assert deliver() == {}
        later(2)  # that worker died: its lease runs out
        assert deliver() == {"sent": 1}
    assert len(receiver.received) == 1


def test_an_erasure_is_announced_after_the_members_earlier_events(app, member, policy):
    known = member.public_id
    with webhook_receiver() as receiver:
        subscribe(receiver.url)
        grant(member, "advertising")
        erase_member(member, actor=None, reason="test")
        db.session.commit()
        assert deliver() == {"sent": 2}
    kinds = [(r.json["type"], r.json["member_id"]) for r in receiver.received]
    # The consent change is read from the ledger at delivery: it names the tombstone now.
    assert kinds == [("consent.changed", member.public_id), ("member.erased", known)]
    # Nothing stored for deliveries names the member.
    assert db.session.scalars(select(Notification)).all() == []


def test_removing_a_subscription_drops_its_undelivered_events(app, member, policy):
    subscribe("https://gone.example/hook")
    grant(member, "advertising")
    sub = db.session.scalars(select(WebhookSubscription)).one()
    assert remove_webhook(sub.public_id) == 1
    db.session.commit()
    assert subscriptions() == [] and deliver() == {}


# --- Receivers on internal addresses (WEBHOOK_ALLOW_PRIVATE off, as in production) ------

INTERNAL_URLS = {
    "http://127.0.0.1:8080/hook": "loopback",
    "http://localhost/hook": "localhost resolves to 127.0.0.1",
    "http://2130706433/hook": "loopback",  # 127.0.0.1 written as one number
    "http://169.254.169.254/latest/meta-data/": "link-local",
    "http://10.0.0.5/hook": "private",
    "https://192.168.1.1/hook": "private",
    "http://172.16.0.1/hook": "private",
    "http://100.64.0.1/hook": "100.64.0.1 is a",  # carrier-grade NAT: not public
    "http://224.0.0.1/hook": "multicast",
    "http://0.0.0.0/hook": "unspecified",
    "http://240.0.0.1/hook": "reserved",
    "http://[::1]/hook": "loopback",
    "http://[fe80::1]/hook": "link-local",
    "http://[fc00::1]/hook": "private",
    "http://[ff02::1]/hook": "multicast",
    "http://[::ffff:127.0.0.1]/hook": "loopback",
    "http://[::ffff:169.254.169.254]/hook": "link-local",
}


@pytest.fixture
def private_refused(app):
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False


@pytest.mark.parametrize(("url", "reason"), sorted(INTERNAL_URLS.items()))
def test_a_receiver_on_an_internal_address_is_refused_when_added(
    app, runner, private_refused, url, reason
):
    from consent_center.models import AuditEvent
    from consent_center.services.errors import Invalid

    with pytest.raises(Invalid) as refused:
        add_webhook(url, ("consent.changed",))
    assert refused.value.status == 422 and reason in str(refused.value.message)
    db.session.rollback()
    result = runner.invoke(args=["webhooks", "add", url])
    assert result.exit_code != 0 and reason in result.output
    assert db.session.scalars(select(WebhookSubscription)).first() is None
    assert db.session.scalars(select(AuditEvent)).first() is None


def test_public_receivers_and_names_that_do_not_resolve_yet_are_accepted(app, private_refused):
    for url in ("https://93.184.216.34/hook", "https://[2606:4700::1]/hook",
                "https://crm.example.com/hook"):  # fmt: skip
        subscribe(url)
    assert len(db.session.scalars(select(WebhookSubscription)).all()) == 3


def test_a_delivery_to_an_internal_address_fails_for_good_at_send_time(app, member, policy):
    """Added while allowed (or by a name that resolved elsewhere then): the worker checks
    the address it is about to connect to, after resolving the name, and never sends."""
    with webhook_receiver() as receiver:
        subscribe(receiver.url)
        subscribe(f"http://localhost:{receiver.port}/hooks/consent")
        app.config["WEBHOOK_ALLOW_PRIVATE"] = False
        grant(member, "advertising")
        assert deliver() == {"failed": 2}
        later()
        assert deliver() == {}  # never retried
    assert receiver.received == []
    errors = sorted(sub.last_error.split(": ", 1)[1] for sub in subscriptions())
    assert errors == [
        "receiver address refused: 127.0.0.1 is a loopback address",
        "receiver address refused: localhost resolves to 127.0.0.1 is a loopback address",
    ]


def test_the_connection_goes_to_the_address_that_was_checked(app, member, policy, monkeypatch):
    """DNS rebinding: a name that answers an allowed address to the check and an internal
    one a moment later. The worker resolves once per connection and connects to the
    address it checked, so the second answer is never used."""
    from consent_center.services import outgoing_webhooks

    allowed, internal = "127.0.0.1", "127.0.0.2"  # here: 127.0.0.1 stands for a public host
    monkeypatch.setattr(
        outgoing_webhooks,
        "refused_address_reason",
        lambda address: f"{address} is internal" if address != allowed else None,
    )
    answers = iter([allowed])
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.test":
            address = next(answers, internal)  # first the allowed address, then internal
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with webhook_receiver() as receiver:
        app.config["WEBHOOK_ALLOW_PRIVATE"] = False
        subscribe(f"http://rebind.test:{receiver.port}/hooks/consent")  # the check: allowed
        answers = iter([allowed])  # the worker's one lookup gets the allowed address
        grant(member, "advertising")
        assert deliver() == {"sent": 1}
        assert len(receiver.received) == 1
        assert receiver.received[0].headers["Host"] == f"rebind.test:{receiver.port}"
        grant(member, "advertising", False)  # a new connection: the name now says internal
        assert deliver() == {"failed": 1}
    assert len(receiver.received) == 1
    refused = "receiver address refused: rebind.test resolves to 127.0.0.2 is internal"
    assert subscriptions()[-1].last_error.split(": ", 1)[1] == refused


def test_a_consent_change_is_not_held_back_by_a_fan_out(app, member, policy):
    """Webhooks get their turn between outbox batches: a change made while thousands of
    policy notices wait reaches downstream systems before those notices are all sent."""
    from consent_center.notify.worker import deliver_everything
    from consent_center.services.policies import publish_policy
    from tests.conftest import policy_texts

    for _ in range(4):
        make_member()
    publish_policy(actor=None, texts=policy_texts("# P\n\nNew.\n"),
                   effective_at=clock.utcnow() + timedelta(days=8), config=app.config)  # fmt: skip
    db.session.commit()
    waiting = select(Notification).where(Notification.status == "pending")
    assert len(db.session.scalars(waiting).all()) >= 5
    with webhook_receiver() as receiver:
        add_webhook(receiver.url, ("consent.changed",))
        grant(member, "trend_analysis")

        class UntilTheChangeArrives:  # the worker's stop event, set by the receiver
            def is_set(self) -> bool:
                return bool(receiver.received)

        counts = deliver_everything(batch_size=1, stop=UntilTheChangeArrives())
    assert counts == {"webhook sent": 1}
    assert len(db.session.scalars(waiting).all()) >= 5  # the notices still wait their turn
