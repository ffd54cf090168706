"""`nothing_written` itself: it sees a new row, a changed column and a sent message."""

from __future__ import annotations

import pytest

from consent_center.extensions import db
from consent_center.services.audit import record_audit
from tests.conftest import make_member, post
from tests.support.writes import nothing_written


def test_a_block_that_writes_nothing_passes(client, member):
    with nothing_written():
        client.get("/contact")


def test_a_new_row_fails(app):
    with pytest.raises(AssertionError, match="audit_event"), nothing_written():
        record_audit("test.action", actor=None)
        db.session.commit()


def test_a_changed_column_fails_unless_excepted(app, member):
    with pytest.raises(AssertionError, match="member"), nothing_written():
        member.name = "Someone Else"
        db.session.commit()
    with nothing_written(except_columns=("member.name",)):
        member.name = "Someone Else Again"
        db.session.commit()


def test_a_sent_message_fails(client):
    make_member(email="known@example.org")
    with pytest.raises(AssertionError, match="notification"), nothing_written():
        assert post(client, "/sign-in", {"identifier": "known@example.org"}).status_code == 303


def test_a_message_in_the_dev_mailbox_fails(app):
    from consent_center.notify.base import Outgoing
    from consent_center.notify.dev import DevMailboxTransport

    message = Outgoing(notification_id=1, public_id="p1", channel="email", kind="help",
                       recipient="a@example.org", subject="s", text="t", html=None)
    with pytest.raises(AssertionError, match="sent a message"), nothing_written():
        assert [r.ok for r in DevMailboxTransport().send_each([message])] == [True]
