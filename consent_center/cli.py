"""Thin `flask` commands that call services and commit."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from .api_cli import api_token_cli, webhooks_cli
from .clock import utcnow
from .domain import Locale, MemberStatus, Role
from .extensions import db
from .metrics import serve_metrics
from .models import Member, PolicyVersion
from .models.policy import PolicyText
from .notify.worker import DAILY_TASKS, DailyTasks, drain, run_worker
from .services.audit import verify_audit_log
from .services.chain_heads import signed_heads, verify_heads
from .services.consents import verify_ledger
from .services.errors import Invalid
from .services.guardians import erase_unanswered_minors, transition_coming_of_age
from .services.members import purge_unverified_members
from .services.policies import latest_published_number, publish_policy
from .services.policy_text import seed_policy
from .services.retention import apply_retention
from .services.staff import add_staff

ledger_cli = AppGroup("ledger", help="The consent ledger.")
audit_cli = AppGroup("audit", help="The audit log.")
demo_cli = AppGroup("demo", help="Demo data for a newcomer's machine.")
policy_cli = AppGroup("policy", help="Policy versions.")
notify_cli = AppGroup("notify", help="The notification outbox.")
staff_cli = AppGroup("staff", help="Staff accounts.")
minors_cli = AppGroup("minors", help="Minors and their guardians.")
members_cli = AppGroup("members", help="Member accounts.")
retention_cli = AppGroup("retention", help="Retention limits (docs/retention.md).")
metrics_cli = AppGroup("metrics", help="Prometheus metrics (docs/deploy.md).")

DEMO_MEMBER_EMAIL = "member@example.com"
DEMO_STAFF_EMAIL = "staff@example.com"


@ledger_cli.command("verify")
@click.option(
    "--heads",
    "heads_file",
    type=click.File("r", encoding="utf-8"),
    help="A statement printed earlier by `flask ledger heads`: prove no link up to it changed.",
)
def ledger_verify(heads_file) -> None:
    """Recompute every member's keyed consent chain and check the current state against it
    (and, with --heads, against an archived signed statement); exit 1 on any problem."""
    report = verify_ledger()
    for member_id, seq, reason in report.broken:
        click.echo(f"BROKEN member-row={member_id} seq={seq}: {reason}", err=True)
    for public_id, purpose, reason in report.drift:
        click.echo(f"DRIFT member={public_id} purpose={purpose}: {reason}", err=True)
    problems = len(report.broken) + len(report.drift)
    click.echo(
        f"checked {report.events_checked} events of {report.members_checked} members: "
        f"{'ok' if report.ok else f'{problems} problems'}"
    )
    if report.legacy_events:
        click.echo(
            f"{report.legacy_events} events predate keyed chains (sha256-legacy): only an "
            "archived signed heads statement protects them (docs/ledger.md)"
        )
    failed = not report.ok
    if heads_file is not None:
        try:
            document = json.load(heads_file)
        except ValueError:
            document = None
        heads = verify_heads(document if isinstance(document, dict) else {})
        # The statement lists audit heads too: their chains must hold up to them as well.
        audit = verify_audit_log()
        for subject, seq, reason in audit.broken:
            chain = "system" if subject is None else f"member-row={subject}"
            click.echo(f"BROKEN audit {chain} seq={seq}: {reason}", err=True)
        for problem in heads.problems:
            click.echo(f"HEADS {problem}", err=True)
        for note in heads.closed:
            click.echo(f"CLOSED {note}")
        click.echo(
            f"checked {heads.heads_checked} signed heads: "
            f"{'ok' if heads.ok else f'{len(heads.problems)} problems'}"
        )
        failed = failed or not heads.ok or not audit.ok
    if failed:
        sys.exit(1)


@ledger_cli.command("heads")
def ledger_heads() -> None:
    """Print a signed statement of every consent ledger and audit chain head (JSON), to
    archive outside the database; `flask ledger verify --heads FILE` checks it later."""
    click.echo(json.dumps(signed_heads(), indent=1))


@audit_cli.command("verify")
def audit_verify() -> None:
    """Recompute every audit-log hash chain; exit 1 when any link is broken."""
    report = verify_audit_log()
    for subject, seq, reason in report.broken:
        chain = "system" if subject is None else f"member-row={subject}"
        click.echo(f"BROKEN {chain} seq={seq}: {reason}", err=True)
    click.echo(
        f"checked {report.events_checked} entries in {report.chains_checked} chains: "
        f"{'ok' if report.ok else f'{len(report.broken)} problems'}"
    )
    if not report.ok:
        sys.exit(1)


def seed_demo() -> list[str]:
    """Seed the company's policy as version 1 and demo users, when the database is empty."""
    lines = []
    if db.session.scalar(select(func.count()).select_from(PolicyVersion)) == 0:
        publish_policy(
            actor=None,
            texts=seed_policy(),
            effective_at=utcnow(),
            config=current_app.config,
            allow_immediate=True,
            notify=False,
        )
        lines.append("seeded policy version 1")
    if db.session.scalar(select(func.count()).select_from(Member)) == 0:
        now = utcnow()
        seen = latest_published_number()
        db.session.add_all(
            [
                Member(
                    name="Demo Member",
                    email=DEMO_MEMBER_EMAIL,
                    locale=Locale.EN,
                    birth_date=datetime(1990, 5, 17, tzinfo=UTC).date(),
                    role=Role.MEMBER,
                    status=MemberStatus.ACTIVE,
                    email_verified_at=now,
                    policy_seen_number=seen,
                ),
                Member(
                    name="Demo Staff",
                    email=DEMO_STAFF_EMAIL,
                    locale=Locale.EN,
                    birth_date=datetime(1985, 3, 2, tzinfo=UTC).date(),
                    role=Role.STAFF,
                    status=MemberStatus.ACTIVE,
                    email_verified_at=now,
                    policy_seen_number=seen,
                ),
            ]
        )
        lines.append(f"seeded demo member {DEMO_MEMBER_EMAIL} and staff {DEMO_STAFF_EMAIL}")
    db.session.commit()
    return lines


@demo_cli.command("seed")
def demo_seed() -> None:
    """Seed the policy and demo users if the database is empty (safe to run again)."""
    for line in seed_demo() or ["database already has data; nothing seeded"]:
        click.echo(line)


@policy_cli.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--file-zh",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The Simplified Chinese text (Markdown); publishing needs it.",
)
@click.option("--effective", required=True, help="Effective date, YYYY-MM-DD (UTC midnight).")
@click.option("--summary", required=True, help="What changed, in a sentence or two.")
@click.option("--summary-zh", default="", help="What changed, in Simplified Chinese.")
@click.option("--title", default="Privacy policy", show_default=True)
@click.option("--title-zh", default="隐私政策", show_default=True)
@click.option(
    "--changes-purpose",
    "changed",
    multiple=True,
    help="A purpose whose terms change (repeatable); members are asked again.",
)
def policy_publish(
    file: Path,
    file_zh: Path | None,
    effective: str,
    summary: str,
    summary_zh: str,
    title: str,
    title_zh: str,
    changed,
) -> None:
    """Publish FILE (English Markdown) and --file-zh (Simplified Chinese) as a new policy
    version, the way the staff console publishes a draft."""

    try:
        when = datetime.strptime(effective, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--effective") from None
    texts = {
        Locale.EN: PolicyText(Locale.EN, title, file.read_text(encoding="utf-8"), summary),
        Locale.ZH: PolicyText(
            Locale.ZH, title_zh, file_zh.read_text(encoding="utf-8") if file_zh else "", summary_zh
        ),
    }
    try:
        version = publish_policy(
            actor=None,
            texts=texts,
            effective_at=when,
            changed_purposes=tuple(changed),
            config=current_app.config,
        )
    except Invalid as exc:
        db.session.rollback()
        for field, messages in exc.field_errors.items():
            for message in messages:
                click.echo(f"{field}: {message}", err=True)
        sys.exit(2)
    db.session.commit()
    click.echo(f"published version {version.number}, effective {version.effective_at:%Y-%m-%d}")


@notify_cli.command("worker")
@click.option("--poll", type=float, default=None, help="Seconds between rounds when idle.")
@click.option("--batch", type=int, default=None, help="Messages claimed per round.")
def notify_worker(poll: float | None, batch: int | None) -> None:
    """Deliver queued email and SMS continuously (run any number on PostgreSQL)."""
    run_worker(poll, batch)  # logs through the app's handler (observability.py)


@notify_cli.command("daily")
def notify_daily() -> None:
    """Run every daily task the worker runs (DAILY_TASKS) once now, for cron or a systemd
    timer; exit 1 when one failed (the others still ran)."""
    results = DailyTasks().run_if_due() or {}
    for name, _task in DAILY_TASKS:
        click.echo(f"{name}: {results[name] if name in results else 'FAILED'}")
    if len(results) < len(DAILY_TASKS):
        sys.exit(1)


@notify_cli.command("drain")
@click.option("--batch", type=int, default=None, help="Messages claimed per round.")
def notify_drain(batch: int | None) -> None:
    """Deliver everything that is due now, then exit."""
    counts = drain(batch)
    click.echo(
        "delivered: "
        + (", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "nothing was due")
    )


@staff_cli.command("add")
@click.argument("email")
@click.option(
    "--role",
    type=click.Choice([Role.STAFF.value, Role.ADMIN.value]),
    default=Role.STAFF.value,
    show_default=True,
)
@click.option("--name", default=None, help="Display name (default: the part before @).")
def staff_add(email: str, role: str, name: str | None) -> None:
    """Create a staff account for EMAIL, or give an existing member that role."""
    try:
        member, created = add_staff(email, role=role, name=name)
    except Exception as exc:  # noqa: BLE001 - a clear message instead of a traceback
        db.session.rollback()
        raise click.ClickException(str(getattr(exc, "message", exc))) from exc
    db.session.commit()
    click.echo(
        f"{'created' if created else 'updated'} {role} {member.email}; "
        "they sign in with a one-time code sent to that address"
    )


@minors_cli.command("transition")
def minors_transition() -> None:
    """End guardian oversight for wards who reached MINOR_AGE (run daily)."""
    count = transition_coming_of_age()
    db.session.commit()
    click.echo(f"{count} ward(s) came of age")


@minors_cli.command("erase-unanswered")
def minors_erase_unanswered() -> None:
    """Erase minors' accounts that waited for a guardian longer than GUARDIAN_WAIT_DAYS, and
    tell each child (the notify worker also runs this daily)."""
    count = erase_unanswered_minors()
    db.session.commit()
    click.echo(f"{count} unanswered minor account(s) erased")


@members_cli.command("purge-unverified")
def members_purge_unverified() -> None:
    """Erase accounts nobody verified within UNVERIFIED_RETENTION_DAYS (the notify worker
    also runs this daily)."""
    count = purge_unverified_members()
    db.session.commit()
    click.echo(f"{count} unverified account(s) erased")


@retention_cli.command("run")
def retention_run() -> None:
    """Apply every retention rule and print what each removed (run daily; the notify
    worker also runs it once a day)."""
    counts = apply_retention()
    db.session.commit()
    for name, count in counts.items():
        click.echo(f"{name}: {count}")


@metrics_cli.command("serve")
@click.option("--bind", default=None, help="host:port (default METRICS_BIND).")
def metrics_serve(bind: str | None) -> None:
    """Serve this node's metrics (every process under METRICS_DIR) to Prometheus until
    stopped; bind it where only the scraper can reach it."""
    try:
        serve_metrics(current_app._get_current_object(), bind or current_app.config["METRICS_BIND"])
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def register_cli(app: Flask) -> None:
    app.cli.add_command(api_token_cli)
    app.cli.add_command(webhooks_cli)
    app.cli.add_command(ledger_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(policy_cli)
    app.cli.add_command(notify_cli)
    app.cli.add_command(staff_cli)
    app.cli.add_command(minors_cli)
    app.cli.add_command(members_cli)
    app.cli.add_command(retention_cli)
    app.cli.add_command(metrics_cli)
