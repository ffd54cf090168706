"""Mail as production sends it: STARTTLS with a verified certificate, then AUTH, for the
sign-in code and the policy notice, both delivered by the worker after the request commits; a
server the client cannot trust (or a refused login) is not sent to, and the message waits in
the outbox until it can be (a code only until it expires)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from consent_center import clock
from consent_center.extensions import db
from consent_center.models import Notification
from consent_center.notify.worker import drain
from tests.conftest import make_member, make_policy, post, publish_notice
from tests.support.smtp_server import SmtpSink
from tests.support.tls import make_server_certificate

LOGIN, PASSWORD = "consent-center", "s3cret-for-tests"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    return make_server_certificate(folder, "smtp"), make_server_certificate(folder, "other")


@pytest.fixture(scope="module")
def _tls_sink(certificates):
    trusted, _other = certificates
    with SmtpSink(
        tls_context=trusted.server_context(), require_starttls=True, credentials=(LOGIN, PASSWORD)
    ) as sink:
        yield sink


@pytest.fixture
def tls_smtp(app, _tls_sink, certificates):
    """Email over SMTP with STARTTLS (the server's CA trusted through MAIL_CA_FILE) and AUTH."""
    trusted, _other = certificates
    _tls_sink.clear()
    app.config.update(
        MAIL_SERVER=_tls_sink.host,
        MAIL_PORT=_tls_sink.port,
        MAIL_TIMEOUT=5,
        MAIL_USE_TLS=True,
        MAIL_USERNAME=LOGIN,
        MAIL_PASSWORD=PASSWORD,
        MAIL_CA_FILE=str(trusted.ca_file),
    )
    yield _tls_sink
    _tls_sink.clear()


def test_sign_in_code_goes_over_starttls_and_auth(client, tls_smtp):
    member = make_member(email="tls.member@example.org")
    assert post(client, "/sign-in", {"identifier": member.email}).status_code == 303
    assert tls_smtp.messages == []  # the request only seals the code in the outbox
    assert drain() == {"sent": 1}  # the worker's round, configured for the TLS server
    [received] = tls_smtp.wait_for(1)
    assert received.rcpt_tos == [member.email]
    assert received.tls and received.login == LOGIN
    code = re.search(r"(\d{6})", received.message.get_body(("plain",)).get_content()).group(1)
    assert db.session.scalars(select(Notification.status)).one() == "sent"
    assert post(client, "/sign-in/code", {"code": code}).status_code == 303


def test_policy_notice_goes_over_starttls_and_auth(app, tls_smtp):
    make_policy()
    member = make_member(email="notice.reader@example.org")
    publish_notice(app)
    assert drain() == {"sent": 1}
    [received] = tls_smtp.wait_for(1)
    assert received.rcpt_tos == [member.email] and received.tls and received.login == LOGIN
    assert db.session.scalars(select(Notification.status)).one() == "sent"


@pytest.mark.parametrize("fault", ["untrusted certificate", "wrong password"])
def test_an_untrusted_server_or_refused_login_gets_nothing_and_the_notice_waits(
        app, tls_smtp, certificates, fault):
    _trusted, other = certificates
    make_policy()
    make_member(email="patient.reader@example.org")
    publish_notice(app)
    good = dict(app.config)
    if fault == "untrusted certificate":
        app.config["MAIL_CA_FILE"] = str(other.ca_file)  # a CA that did not sign the server's
    else:
        app.config["MAIL_PASSWORD"] = "not-the-password"
    start = clock.utcnow()
    clock.freeze(start)
    assert drain() == {"pending": 1}
    assert tls_smtp.messages == []
    row = db.session.scalars(select(Notification)).one()
    assert row.status == "pending" and row.attempts == 1 and row.next_attempt_at > start
    assert ("SSLCertVerificationError" if fault == "untrusted certificate" else "535") in (
        row.last_error
    )
    # Put right, the same notice goes out on its next attempt: it was never lost.
    app.config.update(MAIL_CA_FILE=good["MAIL_CA_FILE"], MAIL_PASSWORD=good["MAIL_PASSWORD"])
    clock.freeze(start + timedelta(hours=2))
    assert drain() == {"sent": 1}
    [received] = tls_smtp.wait_for(1)
    assert received.rcpt_tos == ["patient.reader@example.org"] and received.tls


def test_a_sign_in_code_is_not_sent_to_an_untrusted_server(client, app, tls_smtp, certificates):
    _trusted, other = certificates
    app.config["MAIL_CA_FILE"] = str(other.ca_file)
    member = make_member(email="careful.member@example.org")
    start = clock.utcnow()
    clock.freeze(start)
    assert post(client, "/sign-in", {"identifier": member.email}).status_code == 303
    assert drain() == {"pending": 1}
    assert tls_smtp.messages == []
    # Not lost: the sealed code waits for a retry while it is still valid.
    row = db.session.scalars(select(Notification)).one()
    assert row.status == "pending" and row.attempts == 1 and row.next_attempt_at > start
    assert row.secret and "SSLCertVerificationError" in row.last_error
    # Once its validity has passed it is dead, with its reason, and was never sent.
    clock.freeze(start + timedelta(seconds=app.config["SIGN_IN_CODE_TTL_SECONDS"]))
    assert drain() == {"dead": 1}
    db.session.refresh(row)
    assert (row.status, row.last_error, row.secret) == ("dead", "expired", None)
    assert tls_smtp.messages == []
