"""The soak's database: fresh, built by `flask db upgrade`, then N members inserted set-wise.

Seeded members are what registration leaves behind once a member has verified their email and
their mobile number and chosen policy notices by email and SMS: active, both contacts
verified, `notify_email` and `notify_sms` on, no consent given (optional purposes are off
until granted; a sample then grants through the real service, `set_consent`).
"""

from __future__ import annotations

import random
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench.run import required_extras

BULK_EMAIL = "bulk-{g}@members.example.com"
# Mainland China mobile numbers (SMS_ALLOWED_COUNTRIES defaults to CN), one per member.
BULK_PHONE_BASE = 13_800_000_000


def server_and_name(url: str) -> tuple[str, str]:
    """The maintenance URL (database `postgres`) and the database name of `url`."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    return urlunsplit(parts._replace(path="/postgres", query="")), name


def create_database(url: str) -> None:
    """Make the database `url` names empty: created if missing, else its schema dropped and
    made again (DROP DATABASE waits for a checkpoint, which a busy server can take minutes to
    finish; an empty schema is as fresh for `flask db upgrade`)."""
    admin, name = server_and_name(url)
    if not name.replace("_", "").isalnum():
        raise ValueError(f"refusing an unusual database name: {name!r}")
    with psycopg.connect(admin, autocommit=True) as conn:
        found = conn.execute(
            "SELECT datconnlimit FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if found is not None and found[0] == -2:  # left invalid by an interrupted DROP
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
            found = None
        if found is None:
            conn.execute(f"CREATE DATABASE {name}")
    empty_schema(url)


def empty_schema(url: str) -> None:
    """Drop every table of the database (the soak's own) by dropping its public schema."""
    admin, name = server_and_name(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        # A process of an interrupted run may still hold a connection (and its locks).
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


def seed_members(url: str, n: int, channels: tuple[str, ...] = ("email", "sms")) -> int:
    """Insert `n` verified members in one INSERT ... SELECT, choosing policy notices on
    `channels`; returns how many exist."""
    given = (
        "public_id, name, email, phone, birth_date, locale, role, status, email_verified_at,"
        " phone_verified_at, created_at, updated_at, notify_email, notify_sms,"
        " policy_seen_number"
    )
    with psycopg.connect(url) as conn:
        # Columns a later migration made NOT NULL without a database default: bench/run.py's
        # helper fills them with the model's default.
        extra_cols, extra_vals, extra = required_extras(conn, "member", given)
        seen = conn.execute("SELECT coalesce(max(number), 0) FROM policy_version").fetchone()[0]
        # 16 random bytes as URL-safe base64 without padding: the shape of new_public_id().
        conn.execute(
            f"""
            INSERT INTO member ({given}{extra_cols})
            SELECT rtrim(translate(encode(decode(md5(random()::text || g::text), 'hex'), 'base64'),
                                   '+/', '-_'), '='),
                   'Soak Member ' || g,
                   replace(%(email)s, '{{g}}', g::text),
                   '+86' || (%(phone)s + g)::text,
                   date '1960-01-01' + (g * 37) %% 15000,
                   CASE WHEN g %% 3 = 0 THEN 'zh_Hans_CN' ELSE 'en' END,
                   'member', 'active', now() - interval '30 days', now() - interval '30 days',
                   now() - interval '30 days', now() - interval '30 days',
                   %(by_email)s, %(by_sms)s, %(seen)s{extra_vals}
            FROM generate_series(1, %(n)s) AS g
            """,
            {
                "n": n,
                "email": BULK_EMAIL,
                "phone": BULK_PHONE_BASE,
                "seen": seen,
                "by_email": "email" in channels,
                "by_sms": "sms" in channels,
                **extra,
            },
        )
        count = conn.execute("SELECT count(*) FROM member").fetchone()[0]
        conn.commit()
    return count


def bulk_sample(url: str, limit: int = 5000) -> tuple[list[str], list[str]]:
    """Public ids and mobile numbers of a random sample of the seeded members."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT public_id, phone FROM member WHERE email LIKE 'bulk-%%'"
            " ORDER BY random() LIMIT %s",
            (limit,),
        ).fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]


def grant_sample(app, n: int, seed: int = 7) -> int:
    """`n` seeded members say yes to an optional purpose through the real service, so the
    audience export has members to list."""
    from sqlalchemy import select

    from consent_center.domain import Actor, Method
    from consent_center.extensions import db
    from consent_center.models import Member
    from consent_center.services.consents import set_consent

    rng = random.Random(seed)
    done = 0
    with app.app_context():
        members = db.session.scalars(
            select(Member).where(Member.email.like("bulk-%")).order_by(Member.id).limit(n)
        ).all()
        for member in members:
            for purpose in ("trend_analysis", "advertising"):
                if rng.random() < 0.6:
                    set_consent(
                        member,
                        purpose,
                        True,
                        actor=Actor.MEMBER,
                        method=Method.FORM,
                        actor_member=member,
                    )
                    done += 1
            db.session.commit()
        db.session.remove()
    return done


def prepare(
    stack, members: int, *, webhook: str, staff_email: str, channels=("email", "sms")
) -> str:
    """Everything the run needs in the database, through the app's services in this process
    (each is also a `flask` command: demo seed, staff add, api-token create, webhooks add):
    the company's policy, a staff account, the members, a sample of consents, a webhook
    subscription and an API token. Returns the token."""
    import os
    import time

    os.environ.update(stack.env("harness"))
    from consent_center import create_app
    from consent_center.cli import seed_demo
    from consent_center.extensions import db
    from consent_center.services.api_tokens import create_api_token, parse_scopes
    from consent_center.services.outgoing_webhooks import add_webhook, parse_events
    from consent_center.services.staff import add_staff

    app = create_app("production")
    with app.app_context():
        seed_demo()
        add_staff(staff_email, role="staff")
        db.session.commit()
    started = time.time()
    total = seed_members(stack.database_url, members, channels)
    stack.log(f"seeded {members} members in {time.time() - started:.1f}s ({total} in all)")
    granted = grant_sample(app, min(500, members // 10))
    stack.log(f"{granted} consents given through set_consent (for the audience export)")
    with app.app_context():
        # Subscribed after the seeding: the receiver hears of the run's changes only.
        add_webhook(webhook, parse_events("consent.changed,member.erased"))
        issued = create_api_token(
            "soak-reader", parse_scopes("consents:read,audiences:read,events:read")
        )
        db.session.commit()
        db.engine.dispose()
    return issued.token
