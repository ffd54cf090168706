"""The data inventory's vocabulary: what each stored field about a member is told with.

The inventory itself lives on the model columns: each column that holds member data carries
`info=held(...)` (its label, purposes, source, recipients, retention and what erasure leaves
of it), each such table `info=held_table(...)`. `build_inventory` reads them back into
groups, which /me, the data export, the record counts and erasure all read
(models/inventory.py `DATA_INVENTORY`). Every column is either held member data or named
in `NOT_MEMBER_DATA` with the reason (a test walks the schema).
"""

from __future__ import annotations

from dataclasses import dataclass

from .purposes import SERVICE
from .settings import CODE_RETENTION_HOURS, Setting
from .text import _l

PROVIDED = "provided"
RECORDED = "recorded"
SOURCE_LABELS = {PROVIDED: _l("You gave it"), RECORDED: _l("We recorded it")}

UNTIL_ERASED = _l("While you are a member; removed when your data is erased")
NOT_SHARED = _l("Not shared")
# Who receives a field besides us: the recipients the export and /me name (PIPL art. 17, 23).
MAIL_SERVER = _l(
    "The email server that delivers our messages (ours, or a provider acting for us), only to "
    "deliver them to you"
)
SMS_PROVIDER = _l(
    "Twilio, the text message provider acting for us, only to deliver text messages to you"
)
MESSAGE_CARRIERS = _l(
    "The email server or, for text messages, Twilio, acting for us only to deliver the message"
)
OUR_SYSTEMS = _l(
    "Our own systems that check whether a use is allowed (through our consent API and its "
    "change notices); never anyone outside the company"
)
KEPT_ANONYMISED = _l(
    "Kept as proof of your choices; on erasure it is re-keyed so it no longer identifies you, "
    "and %(years)s years after the erasure it is deleted",
    years=Setting("LEDGER_RETENTION_YEARS"),
)
RECORD_KEPT = _l(
    "While you are a member; on erasure only a record without your contact details is kept, "
    "and %(years)s years after the erasure it is deleted",
    years=Setting("LEDGER_RETENTION_YEARS"),
)
ERASURE_DATE_KEPT = _l(
    "Kept, with nothing that identifies you, as proof that your data was erased"
)
CODE_KEPT = _l(
    "Deleted by our daily clean-up once %(hours)s hours have passed since it expired",
    hours=CODE_RETENTION_HOURS,
)
MESSAGE_CONTENT_KEPT = _l(
    "Deleted %(days)s days after the message was sent (or given up), or sooner when your data "
    "is erased",
    days=Setting("OUTBOX_RETENTION_DAYS"),
)
SESSION_KEPT = _l(
    "Deleted when you sign out, on that device or everywhere; otherwise by our daily clean-up "
    "once it has ended"
)
COMPLETION_NOTICE_KEPT = _l("Discarded once the completion notice is sent")


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


# What erasure writes into a column (`held(erased=...)`): a plain value, or one of these.
KEEP = _Marker("KEEP")  # left as it is (bookkeeping that identifies no one)
ERASURE_TIME = _Marker("ERASURE_TIME")  # the moment of erasure
TOMBSTONE = _Marker("TOMBSTONE")  # a new random id that names no one


@dataclass(frozen=True)
class InventoryField:
    """One stored field about a member, with what we tell the member about it."""

    table: str
    column: str
    label: object
    purposes: tuple[str, ...]
    source: str
    retention: object
    recipients: object = NOT_SHARED
    erased: object = KEEP
    # The labels a stored value is shown by (a gender, a status), where it is a key.
    labels: dict | None = None


@dataclass(frozen=True)
class InventoryGroup:
    """A table holding member data, shown as one section of "What we hold about you"."""

    table: str
    title: object
    description: object
    # The column naming the member a row is about ("id" for the member's own row).
    owner: str
    fields: tuple[InventoryField, ...]


@dataclass(frozen=True)
class _HeldTable:
    title: object
    description: object
    owner: str
    position: int


def held(
    label,
    *,
    retention,
    purposes: tuple[str, ...] = (SERVICE,),
    source: str = RECORDED,
    recipients=NOT_SHARED,
    erased=KEEP,
    labels: dict | None = None,
) -> dict:
    """The `info` of a column holding member data."""
    return {
        "held": InventoryField(
            "", "", label, purposes, source, retention, recipients, erased, labels
        )
    }


def held_table(title, description, *, owner: str, position: int) -> dict:
    """The `info` of a table holding member data: its section of /me, at `position`.

    :param owner: the column naming the member each row is about.
    """
    return {"held": _HeldTable(title, description, owner, position)}


def build_inventory(metadata) -> tuple[InventoryGroup, ...]:
    """Every table and column of `metadata` that holds member data, in the order /me shows
    them (tables by position, columns as declared)."""
    groups = []
    for table in metadata.tables.values():
        about = table.info.get("held")
        if about is None:
            continue
        fields = tuple(
            InventoryField(
                table.name, column.name, f.label, f.purposes, f.source, f.retention,
                f.recipients, f.erased, f.labels,
            )
            for column in table.columns
            if (f := column.info.get("held")) is not None
        )
        groups.append((about.position, InventoryGroup(
            table.name, about.title, about.description, about.owner, fields
        )))
    return tuple(group for _, group in sorted(groups, key=lambda pair: pair[0]))


def erasure_values(group: InventoryGroup, *, now, tombstone: str) -> dict[str, object]:
    """What erasure writes into each column of `group` it does not keep."""
    markers = {ERASURE_TIME: now, TOMBSTONE: tombstone}
    return {
        f.column: markers[f.erased] if isinstance(f.erased, _Marker) else f.erased
        for f in group.fields
        if f.erased is not KEEP
    }


# Profile columns that are the account's bookkeeping (internal numbers, counters, dates that
# are empty until erasure): the member's page says what they are and why, never their values.
PROFILE_BOOKKEEPING = frozenset({
    "public_id",
    "erased_at",
    "policy_seen_number",
    "confirm_guardian_choices",
    "pending_purposes",
    "code_failures",
    "code_failures_since",
    "code_locked_until",
})

# The same groups as a guardian reads them on a child's page (about the child, not "your").
WARD_GROUP_TITLES = {
    "member": _l("Profile"),
    "consent_state": _l("Current consent choices"),
    "consent_event": _l("Consent history"),
    "reconsent_request": _l("When we asked again"),
    "one_time_code": _l("Sign-in and verification codes"),
    "member_session": _l("Where they are signed in"),
    "notification": _l("Messages we sent"),
    "deletion_request": _l("Deletion requests"),
    "birth_date_review": _l("Date-of-birth corrections waiting for review"),
    "guardian_link": _l("Guardians"),
    "change_event": _l("Changes announced to our other systems"),
    "audit_event": _l("Security and audit log"),
}

# Columns that hold no information about a member: keys, bookkeeping and company content.
# Every database column is either in DATA_INVENTORY or here, with the reason (a test checks).
NOT_MEMBER_DATA: dict[tuple[str, str], str] = {
    ("birth_date_review", "id"): "internal row key",
    ("birth_date_review", "public_id"): "random handle, no meaning",
    ("birth_date_review", "member_id"): "internal row key",
    ("birth_date_review", "decided_by_id"): "staff member who decided (staff data)",
    ("consent_event", "request_id"): "random id of the request that wrote it (operations)",
    ("change_event", "request_id"): "random id of the request that wrote it (operations)",
    ("change_event", "after_event_id"): "internal row key (the notice's place in the feed)",
    ("member", "ledger_seq"): "position of the consent ledger chain's head, no meaning",
    ("member", "ledger_hash"): "fingerprint of the consent ledger chain's head, no meaning",
    ("webhook_subscription", "feed_cursor"): "delivery bookkeeping (a place in the feed)",
    ("webhook_subscription", "attempts"): "delivery bookkeeping",
    ("webhook_subscription", "next_attempt_at"): "delivery bookkeeping",
    ("webhook_subscription", "last_error"): "delivery bookkeeping",
    ("webhook_subscription", "lease_until"): "delivery bookkeeping",
    ("webhook_subscription", "last_delivered_at"): "delivery bookkeeping",
    ("notification", "request_id"): "random id of the request that wrote it (operations)",
    ("member", "id"): "internal row key",
    ("consent_state", "member_id"): "internal row key",
    ("consent_event", "id"): "internal row key",
    ("consent_event", "member_id"): "internal row key",
    ("reconsent_request", "id"): "internal row key",
    ("reconsent_request", "member_id"): "internal row key",
    ("one_time_code", "id"): "internal row key",
    ("one_time_code", "token"): "random handle for the code-entry page, no meaning",
    ("one_time_code", "member_id"): "internal row key",
    ("member_session", "id"): "internal row key",
    ("member_session", "member_id"): "internal row key",
    ("notification", "id"): "internal row key",
    ("notification", "public_id"): "random handle, no meaning",
    ("notification", "member_id"): "internal row key",
    ("notification", "dedupe_key"): "built from kinds and internal keys only",
    ("notification", "next_attempt_at"): "delivery scheduling",
    ("notification", "lease_until"): "delivery scheduling",
    ("notification", "content_id"): "internal row key (shared, non-personal content)",
    ("notification", "fan_out_id"): "internal row key",
    ("fan_out", "id"): "internal row key",
    ("deletion_request", "id"): "internal row key",
    ("guardian_link", "id"): "internal row key",
    ("guardian_link", "public_id"): "random handle, no meaning",
    ("guardian_link", "minor_id"): "internal row key",
    ("deletion_request", "public_id"): "random handle, no meaning",
    ("deletion_request", "member_id"): "internal row key",
    ("fan_out", "public_id"): "random handle, no meaning",
    ("fan_out", "kind"): "company bulk-send bookkeeping",
    ("fan_out", "cause"): "company bulk-send bookkeeping",
    ("fan_out", "created_by_id"): "staff member who started it (staff data, not the recipient's)",
    ("fan_out", "created_at"): "company bulk-send bookkeeping",
    ("fan_out", "total"): "company bulk-send bookkeeping",
    ("notification_content", "id"): "internal row key",
    ("notification_content", "fan_out_id"): "internal row key",
    ("notification_content", "channel"): "company content shared by many members",
    ("notification_content", "locale"): "company content shared by many members",
    ("notification_content", "subject"): "company content shared by many members",
    ("notification_content", "body_text"): "company content shared by many members",
    ("notification_content", "body_html"): "company content shared by many members",
    ("audit_event", "id"): "internal row key",
    ("policy_version", "id"): "company content",
    ("policy_version", "public_id"): "random handle, no meaning",
    ("incident_notice", "id"): "internal row key",
    ("incident_notice", "public_id"): "random handle, no meaning",
    ("incident_notice", "content"): "company content (the notice text in each language)",
    ("incident_notice", "audience"): "company bulk-send bookkeeping (the recipient filter)",
    ("incident_notice", "created_by_id"): "staff member who wrote it (not a recipient's data)",
    ("incident_notice", "created_at"): "company bulk-send bookkeeping",
    ("incident_notice", "updated_at"): "company bulk-send bookkeeping",
    ("incident_notice", "sent_at"): "company bulk-send bookkeeping",
    ("incident_notice", "sent_by_id"): "staff member who sent it (not a recipient's data)",
    ("incident_notice", "fan_out_id"): "internal row key",
    ("policy_version", "number"): "company content",
    ("policy_version", "title"): "company content",
    ("policy_version", "body_md"): "company content",
    ("policy_version", "summary"): "company content",
    ("policy_version", "title_zh"): "company content",
    ("policy_version", "body_md_zh"): "company content",
    ("policy_version", "summary_zh"): "company content",
    ("policy_version", "changed_purposes"): "company content",
    ("policy_version", "published_at"): "company content",
    ("policy_version", "effective_at"): "company content",
    ("policy_version", "created_at"): "company content",
    ("alembic_version", "version_num"): "schema bookkeeping",
    # The API and outgoing webhooks: credentials and settings of company systems.
    ("api_token", "id"): "internal row key",
    ("api_token", "name"): "company system that holds the token",
    ("api_token", "token_hash"): "fingerprint of a company system's credential",
    ("api_token", "prefix"): "first characters of a company system's credential",
    ("api_token", "scopes"): "what a company system may read",
    ("api_token", "created_at"): "credential bookkeeping",
    ("api_token", "last_used_at"): "credential bookkeeping",
    ("api_token", "revoked_at"): "credential bookkeeping",
    ("webhook_subscription", "id"): "internal row key",
    ("webhook_subscription", "public_id"): "random handle, no meaning",
    ("webhook_subscription", "url"): "a company system's address",
    ("webhook_subscription", "secret"): "shared signing key of a company system",
    ("webhook_subscription", "events"): "which events a company system receives",
    ("webhook_subscription", "active"): "subscription bookkeeping",
    ("webhook_subscription", "created_at"): "subscription bookkeeping",
    ("change_event", "id"): "internal row key (the change feed's order)",
    ("change_event", "public_id"): "random event id, no meaning",
    ("change_event", "member_id"): "internal row key",
    ("notification", "secret"): (
        "a code or link in transit, encrypted with a key outside the database; deleted once sent"
    ),
    ("consent_event", "key_id"): "names the ledger key that made the hash, no meaning",
    ("audit_event", "key_id"): "names the ledger key that made the hash, no meaning",
    ("notification_subject", "notification_id"): "internal row key",
    ("notification_subject", "subject_key"): (
        "an internal row key or a keyed digest of a contact: finds messages at erasure"
    ),
}
