"""Test databases: a SQLite file and a PostgreSQL database per xdist worker, made by migrations."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.engine import make_url

from consent_center.extensions import db

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/consent_center_test"
BACKENDS = ("sqlite", "postgresql")


def worker_suffix() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def postgres_url() -> str:
    """This worker's PostgreSQL database URL, created if missing (fails loudly if no server)."""
    base = make_url(os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG)
    name = f"{base.database}_{worker_suffix()}"
    admin = base.set(drivername="postgresql", database="postgres")
    dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return base.set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False
    )


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / f'test-{worker_suffix()}.db'}"


def url_for_backend(backend: str, folder: Path) -> str:
    return postgres_url() if backend == "postgresql" else sqlite_url(folder)


def migrate_fresh(app: Flask) -> None:
    """Drop everything and build the schema with the migrations (the only way it is made)."""
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        else:
            db.drop_all()
            with engine.begin() as conn:
                conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        # "heads": parallel feature branches may each add a migration until they are merged.
        upgrade(revision="heads")
        db.session.remove()


def empty_tables(app: Flask) -> None:
    """Delete every row (keeping the schema) so each test starts from nothing."""
    with app.app_context():
        engine = db.engine
        names = [t.name for t in reversed(db.metadata.sorted_tables)]
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
            else:
                for name in names:
                    conn.execute(text(f"DELETE FROM {name}"))
        db.session.remove()


# The tests' Redis database; every process keeps to its own keys in it (no FLUSHDB).
REDIS_URL = "redis://127.0.0.1:6379/13"


def redis_key_prefix() -> str:
    """This test process's own part of the shared Redis: parallel xdist workers (and
    concurrent runs of the suite) each count their limits under their own keys."""
    return f"test-{worker_suffix()}-{os.getpid()}"


def clear_redis_keys(prefix: str) -> None:
    """Delete this process's keys only; other workers' keys in the same database stay."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
