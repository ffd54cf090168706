"""Fail fast (never skip) when the PostgreSQL server the tests need is unreachable."""

import os
import sys

import psycopg
from sqlalchemy.engine import make_url

url = make_url(os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/x"))
dsn = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
try:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
except psycopg.Error as exc:
    sys.exit(f"PostgreSQL is required for the tests and is unreachable at {url.host}:{url.port}: "
             f"{exc}")
print(f"PostgreSQL {version} reachable at {url.host}:{url.port}")
