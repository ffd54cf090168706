"""The soak-and-chaos run (soak/, docs/soak.md) in its 2-minute variant: the production stack
(two gunicorn instances, two notify workers, PostgreSQL, Redis, SMTP, the Twilio stand-in, a
webhook receiver) under Locust traffic while a notify worker and a gunicorn worker are killed,
SMTP and Twilio fail, the database connections are cut and Redis restarts. Every invariant the
full run checks is checked here, so a regression (a message sent twice or lost, a 5xx no fault
explains, drift between ledger and state) fails the build.

It runs once (not per database backend) and needs PostgreSQL and `redis-server`; it is
never skipped: without PostgreSQL it fails, as the rest of `make test` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.databases import DEFAULT_PG

ROOT = Path(__file__).resolve().parent.parent

# One line per figure, each printed whether it passed or not (soak/checks.py).
FIGURES = (
    "requests served",
    "5xx and connection errors",
    "latency toggle: htmx",
    "ledger == state",
    "flask ledger verify",
    "flask audit verify",
    "email exactly once",
    "sms exactly once",
    "none lost",
    "fan-out",
    "webhooks exactly once",
    "toggle -> webhook receiver",
)


def soak_database_url() -> str:
    """A database of its own beside this run's test databases (dropped by the soak)."""
    base = make_url(os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG)
    return base.set(drivername="postgresql", database=f"{base.database}_soak").render_as_string(
        hide_password=False
    )


def postgres_answers(url: str) -> bool:
    admin = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    try:
        psycopg.connect(admin, connect_timeout=5).close()
    except psycopg.OperationalError:
        return False
    return True


@pytest.mark.soak
@pytest.mark.xdist_group("soak")
def test_two_minute_soak_holds_every_invariant():
    url = soak_database_url()
    assert postgres_answers(url), "the soak needs PostgreSQL (make test's own requirement)"
    assert shutil.which("redis-server"), "the soak starts its own redis-server"
    result = subprocess.run(
        [sys.executable, "-m", "soak", "--minutes", "2", "--members", "2000",
         "--database-url", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-12000:]
    for figure in FIGURES:
        assert any(line.startswith(figure) for line in output.splitlines()), (figure, output)
    assert "PASSED: every invariant held" in output
