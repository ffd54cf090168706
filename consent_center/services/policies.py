"""Policy versions: which one is current, safe rendering, and what changed between two."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import nh3
from flask import current_app
from flask_babel import lazy_gettext as _l
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import insert, literal, select

from ..clock import utcnow
from ..domain import PURPOSES
from ..extensions import db
from ..models import ConsentState, Member, PolicyVersion, ReconsentRequest
from ..models.types import UTCDateTime
from .audit import record_audit
from .errors import Conflict, Invalid, NotAllowed, NotFound

# Raw HTML in policy text is escaped, not passed through; nh3 is a second line of defence.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_ALLOWED_TAGS = {
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "ul",
    "ol",
    "li",
    "strong",
    "em",
    "a",
    "blockquote",
    "code",
    "pre",
    "hr",
    "br",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}


def render_markdown(text: str) -> Markup:
    """Render policy Markdown to sanitized HTML."""
    html = _markdown.render(text or "")
    clean = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"https", "http", "mailto", "tel"},
        link_rel="noopener noreferrer",
    )
    return Markup(clean)


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


@dataclass(frozen=True)
class DiffBlock:
    """One paragraph of a diff: `same`, `added`, `removed`, or `changed` with word pieces."""

    kind: str
    text: str = ""
    pieces: tuple[tuple[str, str], ...] = ()


_WORD = re.compile(r"\s+|[\w'-]+|[^\w\s]", re.UNICODE)


def _words(text: str) -> list[str]:
    # CJK text has no spaces: compare it character by character.
    out: list[str] = []
    for token in _WORD.findall(text):
        if any("\u3000" <= ch <= "\u9fff" for ch in token):
            out.extend(token)
        else:
            out.append(token)
    return out


def diff_texts(old: str, new: str) -> list[DiffBlock]:
    """A readable paragraph-level diff, with word-level detail for edited paragraphs."""
    old_paras = [p.strip() for p in re.split(r"\n\s*\n|\n(?=[-*#] )", old or "") if p.strip()]
    new_paras = [p.strip() for p in re.split(r"\n\s*\n|\n(?=[-*#] )", new or "") if p.strip()]
    blocks: list[DiffBlock] = []
    matcher = difflib.SequenceMatcher(a=old_paras, b=new_paras, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            blocks.extend(DiffBlock("same", p) for p in old_paras[a1:a2])
            continue
        olds, news = old_paras[a1:a2], new_paras[b1:b2]
        if op == "replace":
            # Pair edited paragraphs one to one; the rest are plain additions or removals.
            for o, n in zip(olds, news, strict=False):
                blocks.append(DiffBlock("changed", pieces=_word_pieces(o, n)))
            blocks.extend(DiffBlock("removed", p) for p in olds[len(news) :])
            blocks.extend(DiffBlock("added", p) for p in news[len(olds) :])
        elif op == "delete":
            blocks.extend(DiffBlock("removed", p) for p in olds)
        else:
            blocks.extend(DiffBlock("added", p) for p in news)
    return blocks


def _word_pieces(old: str, new: str) -> tuple[tuple[str, str], ...]:
    a, b = _words(old), _words(new)
    pieces: list[tuple[str, str]] = []
    for op, a1, a2, b1, b2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            pieces.append(("same", "".join(a[a1:a2])))
        else:
            if a2 > a1:
                pieces.append(("removed", "".join(a[a1:a2])))
            if b2 > b1:
                pieces.append(("added", "".join(b[b1:b2])))
    return tuple(pieces)


def notice_days(changed_purposes: tuple[str, ...], config) -> int:
    """Days of advance notice a version needs: longer when it changes a purpose."""
    if changed_purposes:
        return config["POLICY_PURPOSE_NOTICE_DAYS"]
    return config["POLICY_NOTICE_DAYS"]


def version_errors(
    *,
    body_md: str,
    summary: str,
    effective_at: datetime | None,
    changed_purposes: tuple[str, ...],
    config,
    now: datetime | None,
) -> dict[str, list]:
    """The rules every version meets before it is published, as field errors.

    :param now: check the notice period from this moment; None skips that check.
    """
    errors: dict[str, list] = {}
    if not (body_md or "").strip():
        errors["body_md"] = [_l("The policy text is required.")]
    if not (summary or "").strip():
        errors["summary"] = [_l("Say what changed.")]
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


def publish_policy(
    *,
    actor: Member | None,
    title: str,
    body_md: str,
    summary: str,
    effective_at: datetime,
    changed_purposes: tuple[str, ...] = (),
    config,
    allow_immediate: bool = False,
    notify: bool = True,
) -> PolicyVersion:
    """Publish a new, immutable policy version.

    :param effective_at: when it takes effect; at least the notice period from now unless
        ``allow_immediate`` (used only for the very first version, which replaces nothing).
    :param notify: tell every member in advance (in-app banner, and email/SMS per their
        choices, through the outbox in this same transaction).
    :raises Invalid: on an empty text or summary, an unknown purpose or too short a notice.
    """
    now = utcnow()
    errors = version_errors(
        body_md=body_md,
        summary=summary,
        effective_at=effective_at,
        changed_purposes=changed_purposes,
        config=config,
        now=None if allow_immediate else now,
    )
    if errors:
        raise Invalid(_l("The policy version cannot be published."), errors)
    version = PolicyVersion(
        number=_next_version_number(),
        title=title.strip(),
        body_md=body_md,
        summary=summary.strip(),
        changed_purposes=",".join(changed_purposes),
        published_at=now,
        effective_at=effective_at,
    )
    db.session.add(version)
    db.session.flush()
    record_audit(
        "policy.published",
        actor=actor,
        version=version.number,
        effective_at=effective_at.isoformat(),
        changed_purposes=list(changed_purposes),
    )
    record_reconsent_requests(version)
    if notify:
        notify_policy_change(version, actor)
    return version


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
    from .guardian_notices import ask_guardians_again
    from .notifications import start_fan_out

    ask_guardians_again(version)
    return start_fan_out(
        kind="policy_notice",
        cause=f"policy_version:{version.number}",
        actor=actor,
        context={
            "number": version.number,
            "summary": version.summary,
            "effective_at": version.effective_at,
            "changed_purpose_keys": version.changed_purpose_keys,
        },
    )


def seed_text_to_markdown(text: str) -> tuple[str, str]:
    """Turn the company's plain-text policy into Markdown; returns (title, markdown).

    Short lines without a final full stop are section headings; "- " lines stay list items.
    """
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    title = lines[0].strip()
    out: list[str] = []
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("- "):
            out.append(stripped)
            continue
        if out and out[-1].startswith("- "):
            out.append("")
        if stripped.lower().startswith(("email:", "tel:")):
            out.append(stripped + "  ")  # contact lines: hard line breaks, one paragraph
        elif len(stripped) < 70 and not stripped.endswith((".", ";", ":", "。")):
            out.extend([f"## {stripped}", ""])
        else:
            out.extend([stripped, ""])
    return title, "\n".join(out).strip() + "\n"


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


def _require_staff(actor: Member) -> None:
    if actor is None or not actor.is_staff:
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
    staff: Member,
    draft: PolicyVersion | None = None,
    *,
    title: str,
    body_md: str,
    summary: str,
    changed_purposes: tuple[str, ...],
    effective_at: datetime | None,
    config,
) -> PolicyVersion:
    """Create a draft (``draft=None``) or change one; it is checked as publishing would.

    :raises NotAllowed: for a non-staff actor.
    :raises Conflict: when `draft` is already published.
    :raises Invalid: with field errors (text, summary, purposes, too short a notice).
    """
    _require_staff(staff)
    if draft is not None and draft.published_at is not None:
        raise Conflict(_l("A published version cannot be changed."))
    changed_purposes = tuple(dict.fromkeys(changed_purposes))
    errors = version_errors(
        body_md=body_md,
        summary=summary,
        effective_at=effective_at,
        changed_purposes=changed_purposes,
        config=config,
        now=utcnow(),
    )
    title = " ".join((title or "").split())
    if not title:
        errors["title"] = [_l("Give the version a title.")]
    elif len(title) > 200:
        errors["title"] = [_l("Use at most 200 characters.")]
    if errors:
        raise Invalid(_l("The draft cannot be saved."), errors)
    created = draft is None
    if created:
        draft = PolicyVersion(number=None, published_at=None, created_at=utcnow())
        db.session.add(draft)
    draft.title = title
    draft.body_md = body_md
    draft.summary = summary.strip()
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


def publish_draft(draft: PolicyVersion, staff: Member):
    """Publish a draft: give it the next number, make it immutable and tell every member in
    advance through the fan-out (the same rules and notice as `publish_policy`).

    The draft's row is locked first, so two staff pressing "publish" at once publish it once.

    :returns: the fan-out of the notice (its progress page is where staff go next).
    :raises NotAllowed: for a non-staff actor.
    :raises Conflict: when it is already published.
    :raises Invalid: when it breaks a rule now (e.g. the effective date came too close).
    """
    _require_staff(staff)
    db.session.execute(
        select(PolicyVersion.id).where(PolicyVersion.id == draft.id).with_for_update()
    )
    db.session.refresh(draft)
    if draft.published_at is not None:
        raise Conflict(_l("This version is already published."))
    now = utcnow()
    errors = version_errors(
        body_md=draft.body_md,
        summary=draft.summary,
        effective_at=draft.effective_at,
        changed_purposes=draft.changed_purpose_keys,
        config=current_app.config,
        now=now,
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
    return notify_policy_change(draft, staff)


def notice_reach() -> dict[str, int]:
    """Who a policy notice reaches now: active members in the app, and by email and SMS."""
    from ..domain import Channel
    from .notifications import fan_out_condition
    from .usability import active_condition

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
