"""The domain's vocabulary: every status, method and message kind has its one label."""

from __future__ import annotations

from pathlib import Path

import pytest

from consent_center import domain
from consent_center.domain import (
    ACTOR_LABELS,
    CHANNEL_LABELS,
    DELETION_STATUS_LABELS,
    GENDER_LABELS,
    GUARDIAN_STATUS_LABELS,
    LOCALE_LABELS,
    MEMBER_STATUS_LABELS,
    METHOD_LABELS,
    NOTIFICATION_KIND_LABELS,
    NOTIFICATION_STATUS_LABELS,
    ROLE_LABELS,
    STAFF_ACTOR_LABELS,
    Actor,
    Channel,
    DeletionStatus,
    Gender,
    GuardianStatus,
    Locale,
    MemberStatus,
    Method,
    NotificationStatus,
    Role,
)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@pytest.mark.parametrize(
    ("enum", "labels"),
    [
        (Role, ROLE_LABELS),
        (MemberStatus, MEMBER_STATUS_LABELS),
        (Gender, GENDER_LABELS),
        (Locale, LOCALE_LABELS),
        (GuardianStatus, GUARDIAN_STATUS_LABELS),
        (Actor, ACTOR_LABELS),
        (Actor, STAFF_ACTOR_LABELS),
        (Method, METHOD_LABELS),
        (NotificationStatus, NOTIFICATION_STATUS_LABELS),
        (DeletionStatus, DELETION_STATUS_LABELS),
    ],
)
def test_every_value_has_its_label(enum, labels):
    assert set(labels) == set(enum)


def test_every_channel_that_reaches_a_member_has_a_label():
    assert set(CHANNEL_LABELS) == set(Channel) - {Channel.WEBHOOK}


def test_every_message_kind_has_a_label():
    """A member's message list names each message by its kind, never by a raw key."""
    kinds = {
        path.name.split(".")[0]
        for folder in ("email", "sms")
        for path in (TEMPLATES / folder).iterdir()
        if not path.name.startswith("_") and not path.name.startswith("help.")
    }
    assert kinds <= set(NOTIFICATION_KIND_LABELS), kinds - set(NOTIFICATION_KIND_LABELS)


def test_the_staff_console_names_statuses_as_the_member_page_does(client, login_as):
    """One label per status: the staff search shows the member's status in the words /me
    uses (they once differed for a minor awaiting a guardian)."""
    from tests.conftest import make_member

    staff = make_member(role="admin", email="ops@staff.example")
    make_member(name="Qzxw Minor", email="qzxw@example.org", status="awaiting_guardian")
    login_as(staff)
    page = client.get("/staff/members?q=Qzxw").get_data(as_text=True)
    assert str(MEMBER_STATUS_LABELS[MemberStatus.AWAITING_GUARDIAN]) in page


def test_the_package_still_exports_every_former_name():
    """Other modules import from `consent_center.domain`; the split kept each name there."""
    for name in ("PURPOSES", "REFUSAL_GROUNDS", "REFUSAL_REMEDIES", "WITHDRAWAL_NOTE",
                 "OPTIONAL_PURPOSES", "OPEN_DELETION_STATUSES", "SOURCE_LABELS",
                 "NOT_MEMBER_DATA", "CODE_RETENTION_HOURS", "LOCALE_HTML_LANG"):
        assert hasattr(domain, name), name
