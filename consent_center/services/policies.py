"""Policy versions' lifecycle: drafts, publishing with advance notice, effective dates, the
version in force, re-consent requests and the notices to members.

The words of a version (rendering, the diff, the shipped seed) are in `policy_text`."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, insert, literal, or_, select

from ..clock import utcnow
from ..domain import PURPOSES, Channel, Locale
from ..extensions import db
from ..models import ConsentState, Member, PolicyVersion, ReconsentRequest
from ..models.policy import PolicyText
from ..models.types import UTCDateTime
from .audit import record_audit
from .errors import Conflict, Invalid, NotAllowed, NotFound
from .guardian_notices import ask_guardians_again
from .notifications import fan_out_condition, start_fan_out
from .usability import active_condition


def in_force(now, *columns):
    """SQL: `columns` of the version in effect at `now` (a time or a bound parameter): the
    latest published one whose effective date has come."""
    return (
        select(*columns)
        .where(PolicyVersion.published_at.is_not(None), PolicyVersion.effective_at <= now)
        .order_by(PolicyVersion.effective_at.desc(), PolicyVersion.number.desc())
        .limit(1)
    )


def current_policy(now: datetime | None = None) -> PolicyVersion | None:
    """The version in effect now: the latest published one whose effective date has come."""
    return db.session.scalars(in_force(now or utcnow(), PolicyVersion)).first()


def current_policy_id(now):
    """SQL: the id of the version in effect at `now`, as a scalar subquery."""
    return in_force(now, PolicyVersion.id).scalar_subquery()


def upcoming_policy(now: datetime | None = None) -> PolicyVersion | None:
    """The next published version not yet in effect, if one is scheduled."""
    now = now or utcnow()
    return db.session.scalars(
        select(PolicyVersion)
        .where(PolicyVersion.published_at.is_not(None), PolicyVersion.effective_at > now)
        .order_by(PolicyVersion.effective_at)
        .limit(1)
    ).first()


def published_versions() -> list[PolicyVersion]:
    """Every published version, newest first."""
    return list(
        db.session.scalars(
            select(PolicyVersion)
            .where(PolicyVersion.published_at.is_not(None))
            .order_by(PolicyVersion.number.desc())
        )
    )


def load_published_version(number: int) -> PolicyVersion:
    """The published version with this number.

    :raises NotFound: when there is none (drafts are not public).
    """
    version = db.session.scalars(
        select(PolicyVersion).where(
            PolicyVersion.number == number, PolicyVersion.published_at.is_not(None)
        )
    ).first()
    if version is None:
        raise NotFound(_l("No such policy version."))
    return version


def previous_version(version: PolicyVersion) -> PolicyVersion | None:
    """The published version just before `version`."""
    return db.session.scalars(
        select(PolicyVersion)
        .where(PolicyVersion.published_at.is_not(None), PolicyVersion.number < version.number)
        .order_by(PolicyVersion.number.desc())
        .limit(1)
    ).first()


def notice_days(changed_purposes: tuple[str, ...], config) -> int:
    """Days of advance notice a version needs: longer when it changes a purpose."""
    if changed_purposes:
        return config["POLICY_PURPOSE_NOTICE_DAYS"]
    return config["POLICY_NOTICE_DAYS"]


def version_errors(
    *,
    texts: dict[str, PolicyText],
    effective_at: datetime | None,
    changed_purposes: tuple[str, ...],
    config,
    now: datetime | None,
    publishing: bool,
) -> dict[str, list]:
    """The rules a version meets, as field errors named like its columns (`body_md_zh`...).

    A draft needs its English words; publishing needs the Simplified Chinese ones too, since
    members read the policy, and are told of its changes, in their own language.

    :param now: check the notice period from this moment; None skips that check.
    """
    errors: dict[str, list] = {}
    english, chinese = texts[Locale.EN], texts[Locale.ZH]
    required = {
        "title": _l("Give the version a title."),
        "body_md": _l("The policy text is required."),
        "summary": _l("Say what changed."),
    }
    for part in english.missing:
        errors[part] = [required[part]]
    if publishing:
        required_zh = {
            "title": _l("Give the version a Simplified Chinese title before publishing."),
            "body_md": _l(
                "The Simplified Chinese text is required before publishing: members read "
                "the policy in their own language."
            ),
            "summary": _l(
                "Say what changed in Simplified Chinese too before publishing: members are "
                "told in their own language."
            ),
        }
        for part in chinese.missing:
            errors[f"{part}_zh"] = [required_zh[part]]
    for text, field in ((english, "title"), (chinese, "title_zh")):
        if len(text.title) > 200:
            errors[field] = [_l("Use at most 200 characters.")]
    unknown = [p for p in changed_purposes if p not in PURPOSES]
    if unknown:
        errors["changed_purposes"] = [_l("Unknown purpose: %(names)s", names=", ".join(unknown))]
    days = notice_days(changed_purposes, config)
    if effective_at is None:
        errors["effective_at"] = [_l("Choose the date it takes effect.")]
    elif now is not None and effective_at < now + timedelta(days=days):
        errors["effective_at"] = [
            _l("Members must be told at least %(days)d days in advance.", days=days)
        ]
    return errors


def clean_text(text: PolicyText) -> PolicyText:
    """The words as they are stored: the title on one line, the summary trimmed."""
    return PolicyText(
        text.locale,
        " ".join((text.title or "").split()),
        text.body_md or "",
        (text.summary or "").strip(),
    )


# pg_advisory_xact_lock key serialising the numbering of published versions.
VERSION_NUMBER_LOCK_KEY = 0x706F6C69  # "poli"


def _next_version_number() -> int:
    """The number the version being published gets: one more than the highest so far.

    On PostgreSQL the publisher first takes a transaction-scoped advisory lock, so two
    versions published at the same moment get consecutive numbers (the second waits for the
    first to commit, then reads its number) instead of colliding on the unique number.
    SQLite serialises writers itself.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(db.func.pg_advisory_xact_lock(VERSION_NUMBER_LOCK_KEY)))
    return (db.session.scalar(select(db.func.max(PolicyVersion.number))) or 0) + 1


def record_reconsent_requests(version: PolicyVersion) -> int:
    """Record, for the ledger, that `version` asks again every member who said yes to a
    purpose it changes: one append-only row per member and purpose, written set-wise in the
    publishing transaction (one statement, however many members).

    :returns: how many requests were recorded.
    """
    purposes = version.changed_purpose_keys
    if not purposes:
        return 0
    asked = select(
        ConsentState.member_id,
        ConsentState.purpose,
        literal(version.id),
        ConsentState.event_id,
        literal(version.published_at, UTCDateTime()),
    ).where(ConsentState.purpose.in_(purposes), ConsentState.granted.is_(True))
    result = db.session.execute(
        insert(ReconsentRequest).from_select(
            ["member_id", "purpose", "policy_version_id", "event_id", "created_at"], asked
        )
    )
    return result.rowcount


def notify_policy_change(version: PolicyVersion, actor: Member | None):
    """Enqueue the advance notice of `version` to every member (see `start_fan_out`); when it
    changes a purpose, a minor's yes for it goes back to the guardians, who are asked again
    (`guardians.ask_guardians_again`)."""
    ask_guardians_again(version)
    return start_fan_out(
        kind="policy_notice",
        cause=f"policy_version:{version.number}",
        actor=actor,
        context={
            "number": version.number,
            # Each reader is told in their language (`for_reader`); the templates pick.
            "summaries": {locale: version.text_for_reader(locale).summary for locale in Locale},
            "effective_at": version.effective_at,
            "changed_purpose_keys": version.changed_purpose_keys,
        },
    )


def acknowledge_policy_notice(member: Member, number: int) -> None:
    """Hide the notice of version `number` (and every older one) for this member.

    :raises NotFound: for a version that is not published.
    """
    version = load_published_version(number)
    if member.policy_seen_number < version.number:
        member.policy_seen_number = version.number
        record_audit(
            "policy.notice_acknowledged", actor=member, subject=member, version=version.number
        )


def latest_published_number() -> int:
    return (
        db.session.scalar(
            select(db.func.max(PolicyVersion.number)).where(PolicyVersion.published_at.is_not(None))
        )
        or 0
    )


# --- Drafts and publishing from the staff console ------------------------------------------

DRAFT = "draft"
SCHEDULED = "scheduled"
IN_EFFECT = "in_effect"
SUPERSEDED = "superseded"


def _require_staff(actor: Member | None) -> None:
    """Staff draft and publish; `None` is the system itself: a `flask` command run by an
    operator on the server (the CLI and the demo seed)."""
    if actor is not None and not actor.is_staff:
        raise NotAllowed(_l("Only staff may draft and publish policy versions."))


def version_status(
    version: PolicyVersion, current: PolicyVersion | None, now: datetime | None = None
) -> str:
    """`draft`, `scheduled` (published, not yet in effect), `in_effect` or `superseded`."""
    now = now or utcnow()
    if version.published_at is None:
        return DRAFT
    if version.effective_at > now:
        return SCHEDULED
    if current is not None and version.id == current.id:
        return IN_EFFECT
    return SUPERSEDED


def staff_versions(now: datetime | None = None) -> list[tuple[PolicyVersion, str]]:
    """Every version with its status: drafts first (newest first), then by number, newest
    first."""
    now = now or utcnow()
    current = current_policy(now)
    versions = db.session.scalars(
        select(PolicyVersion).order_by(
            PolicyVersion.published_at.is_not(None),
            PolicyVersion.number.desc(),
            PolicyVersion.created_at.desc(),
        )
    )
    return [(v, version_status(v, current, now)) for v in versions]


def load_version_for_staff(staff: Member, public_id: str) -> PolicyVersion:
    """Any version, draft or published, by its public id (staff only).

    :raises NotAllowed: for a non-staff actor.
    :raises NotFound: for an unknown id.
    """
    _require_staff(staff)
    version = db.session.scalars(
        select(PolicyVersion).where(PolicyVersion.public_id == public_id)
    ).first()
    if version is None:
        raise NotFound(_l("No such policy version."))
    return version


def load_draft_for_staff(staff: Member, public_id: str) -> PolicyVersion:
    """A draft by its public id, for editing.

    :raises Conflict: when it is already published (published versions never change).
    """
    version = load_version_for_staff(staff, public_id)
    if version.published_at is not None:
        raise Conflict(
            _l("A published version cannot be changed. Publish a new version to correct it.")
        )
    return version


def diff_base(version: PolicyVersion) -> PolicyVersion | None:
    """What a version is compared with: the version in effect for a draft or a scheduled
    version, the previous published one otherwise."""
    if version.published_at is None or version.effective_at > utcnow():
        current = current_policy()
        return current if current is None or current.id != version.id else None
    return previous_version(version)


def save_draft(
    staff: Member | None,
    draft: PolicyVersion | None = None,
    *,
    texts: dict[str, PolicyText],
    changed_purposes: tuple[str, ...],
    effective_at: datetime | None,
    config,
    allow_immediate: bool = False,
) -> PolicyVersion:
    """Create a draft (``draft=None``) or change one. It needs its English words and meets
    the rules of publishing but one: the Simplified Chinese words may come later, and
    `publish_draft` refuses the draft until they have.

    :param texts: the words per language (`Locale`), as staff typed them.
    :param allow_immediate: skip the notice period (see `publish_draft`).
    :raises NotAllowed: for a non-staff actor.
    :raises Conflict: when `draft` is already published.
    :raises Invalid: with field errors (text, summary, purposes, too short a notice).
    """
    _require_staff(staff)
    if draft is not None and draft.published_at is not None:
        raise Conflict(_l("A published version cannot be changed."))
    changed_purposes = tuple(dict.fromkeys(changed_purposes))
    texts = {locale: clean_text(texts.get(locale) or PolicyText(locale)) for locale in Locale}
    errors = version_errors(
        texts=texts,
        effective_at=effective_at,
        changed_purposes=changed_purposes,
        config=config,
        now=None if allow_immediate else utcnow(),
        publishing=False,
    )
    if errors:
        raise Invalid(_l("The draft cannot be saved."), errors)
    created = draft is None
    if created:
        draft = PolicyVersion(number=None, published_at=None, created_at=utcnow())
        db.session.add(draft)
    for text in texts.values():
        draft.set_text(text)
    draft.changed_purposes = ",".join(changed_purposes)
    draft.effective_at = effective_at
    db.session.flush()
    record_audit(
        "policy.draft_created" if created else "policy.draft_updated",
        actor=staff,
        draft=draft.public_id,
        effective_at=effective_at.isoformat(),
        changed_purposes=list(changed_purposes),
    )
    return draft


def discard_draft(staff: Member, draft: PolicyVersion) -> None:
    """Delete a draft that will not be published.

    :raises Conflict: when it is already published.
    """
    _require_staff(staff)
    if draft.published_at is not None:
        raise Conflict(_l("A published version cannot be changed."))
    record_audit("policy.draft_discarded", actor=staff, draft=draft.public_id)
    db.session.delete(draft)
    db.session.flush()


def publish_draft(
    draft: PolicyVersion,
    staff: Member | None,
    *,
    allow_immediate: bool = False,
    notify: bool = True,
):
    """Publish a draft: give it the next number, make it immutable, record the re-consent
    requests of the purposes it changes and tell every member in advance through the
    fan-out. The one way a version is published, from the staff console and the CLI.

    The draft's row is locked first, so two staff pressing "publish" at once publish it once.

    :param allow_immediate: the system may publish the very first version (it replaces
        nothing) without a notice period; any later version needs one.
    :param notify: tell every member (in-app banner, and email/SMS per their choices,
        through the outbox in this same transaction).
    :returns: the fan-out of the notice (its progress page is where staff go next), or None
        without `notify`.
    :raises NotAllowed: for a non-staff actor.
    :raises Conflict: when it is already published.
    :raises Invalid: when it breaks a rule now: no Simplified Chinese words, or an effective
        date that came too close.
    """
    _require_staff(staff)
    db.session.execute(
        select(PolicyVersion.id).where(PolicyVersion.id == draft.id).with_for_update()
    )
    db.session.refresh(draft)
    if draft.published_at is not None:
        raise Conflict(_l("This version is already published."))
    now = utcnow()
    immediate = allow_immediate and staff is None and latest_published_number() == 0
    errors = publish_errors(
        draft.texts, draft.effective_at, draft.changed_purpose_keys, now, immediate=immediate
    )
    if errors:
        raise Invalid(_l("The policy version cannot be published."), errors)
    draft.number = _next_version_number()
    draft.published_at = now
    db.session.flush()
    record_audit(
        "policy.published",
        actor=staff,
        version=draft.number,
        draft=draft.public_id,
        effective_at=draft.effective_at.isoformat(),
        changed_purposes=list(draft.changed_purpose_keys),
    )
    record_reconsent_requests(draft)
    return notify_policy_change(draft, staff) if notify else None


def publish_errors(
    texts: dict[str, PolicyText],
    effective_at: datetime | None,
    changed_purposes: tuple[str, ...],
    now: datetime,
    *,
    immediate: bool = False,
) -> dict[str, list]:
    """What stops these words from being published now (empty when nothing does)."""
    return version_errors(
        texts={locale: clean_text(texts.get(locale) or PolicyText(locale)) for locale in Locale},
        effective_at=effective_at,
        changed_purposes=changed_purposes,
        config=current_app.config,
        now=None if immediate else now,
        publishing=True,
    )


def publish_policy(
    *,
    actor: Member | None,
    texts: dict[str, PolicyText],
    effective_at: datetime,
    changed_purposes: tuple[str, ...] = (),
    config,
    allow_immediate: bool = False,
    notify: bool = True,
) -> PolicyVersion:
    """Draft and publish in one step, for the CLI and the demo seed: `save_draft`, then
    `publish_draft`, as staff do in two. Nothing is written when the words cannot be
    published.

    :raises Invalid: as `publish_draft` does.
    """
    errors = publish_errors(
        texts,
        effective_at,
        tuple(changed_purposes),
        utcnow(),
        immediate=allow_immediate and actor is None and latest_published_number() == 0,
    )
    if errors:
        raise Invalid(_l("The policy version cannot be published."), errors)
    draft = save_draft(
        actor,
        texts=texts,
        changed_purposes=tuple(changed_purposes),
        effective_at=effective_at,
        config=config,
        allow_immediate=allow_immediate,
    )
    publish_draft(draft, actor, allow_immediate=allow_immediate, notify=notify)
    return draft


def notice_due_condition(seen, registered_at):
    """SQL: a published version a member is still to be told about. It is newer than the
    last notice they acknowledged (`seen`) and was published or takes effect after they
    registered: the version they registered under, and older ones, are what they read and
    agreed to then, so they are no change to them."""
    return and_(
        PolicyVersion.published_at.is_not(None),
        PolicyVersion.number > seen,
        or_(PolicyVersion.published_at > registered_at, PolicyVersion.effective_at > registered_at),
    )


def notice_reach() -> dict[str, int]:
    """Who a policy notice reaches now: active members in the app, and by email and SMS."""
    email = fan_out_condition(Channel.EMAIL)
    sms = fan_out_condition(Channel.SMS)
    members, by_email, by_sms = db.session.execute(
        select(
            db.func.count(),
            db.func.coalesce(db.func.sum(db.case((email, 1), else_=0)), 0),
            db.func.coalesce(db.func.sum(db.case((sms, 1), else_=0)), 0),
        ).where(active_condition())
    ).one()
    return {"members": int(members), "email": int(by_email), "sms": int(by_sms)}
