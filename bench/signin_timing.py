"""Does a sign-in reveal whether an account exists by how long it takes?

Serves the app under gunicorn on PostgreSQL (a fresh `consent_center_bench_signin` database,
schema by migrations, the demo accounts seeded) with a `flask notify worker` beside it, and a
real SMTP server that takes `--smtp-delay` seconds (default 0.05) to accept each message, as
a remote server does. Then times `--requests` (default 50) sign-in POSTs for the demo member's
address and as many for an address with no account, interleaved (the order alternates each
round), after a few warm-up requests of each, and prints the medians and their difference.

    .venv/bin/python bench/signin_timing.py
    .venv/bin/python bench/signin_timing.py --root /tmp/cc_before   # another checkout's code

`--root` serves the code of another checkout (e.g. an older commit unpacked with
`git archive`) with this virtualenv; the database is rebuilt by that checkout's migrations.
Every request goes to 127.0.0.1 and the run is bounded (a few seconds).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.smtp_server import SmtpSink  # noqa: E402  (a real SMTP server)

PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
DB_NAME = "consent_center_bench_signin"
DB_URL = f"{PG_SERVER}/{DB_NAME}"
KNOWN = "member@example.com"  # the demo member `flask demo seed` creates
UNKNOWN = "nobody-here@example.com"
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def log(message: str) -> None:
    print(f"[signin-timing] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(sink: SmtpSink, **extra) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith(("MAIL_", "TWILIO_"))}
    values.update(
        CONSENT_CENTER_ENV="development",
        FLASK_APP="consent_center:create_app",
        DATABASE_URL=DB_URL,
        SECRET_KEY=secrets.token_hex(32),
        PUBLIC_BASE_URL="http://127.0.0.1",
        MAIL_SERVER=sink.host,
        MAIL_PORT=str(sink.port),
        # 50 POSTs for one address would hit the per-address limit: this measures the send.
        RATELIMIT_ENABLED="false",
        SESSION_COOKIE_SECURE="false",
    )
    values.update(extra)
    return values


def fresh_database(root: Path, env: dict[str, str]) -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    for args in (["db", "upgrade"], ["demo", "seed"]):
        subprocess.run(
            [sys.executable, "-m", "flask", *args], env=env, cwd=root, check=True,
            capture_output=True,
        )


def code_location(root: Path, env: dict[str, str]) -> str:
    """Which consent_center the servers import from `root` (must be that checkout's)."""
    return subprocess.run(
        [sys.executable, "-c", "import consent_center; print(consent_center.__file__)"],
        env=env, cwd=root, check=True, capture_output=True, text=True,
    ).stdout.strip()


class Browser:
    """One cookie session against the server; a new TCP connection per request (gunicorn's
    sync workers close each one)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie = ""

    def request(self, method: str, path: str, body: str | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read().decode()
        conn.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            self.cookie = header.split(";", 1)[0]
        return response.status, data

    def timed_sign_in(self, identifier: str) -> float:
        """GET the form (untimed), then time the POST that asks for a code, in ms."""
        status, page = self.request("GET", "/sign-in")
        assert status == 200, status
        token = CSRF.search(page).group(1)
        body = urlencode({"csrf_token": token, "identifier": identifier})
        start = time.perf_counter()
        status, _ = self.request("POST", "/sign-in", body)
        elapsed = (time.perf_counter() - start) * 1000
        assert status == 303, f"sign-in answered {status}"
        return elapsed


def wait_for_server(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited; see its output above")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not answer /healthz within 30 s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=50, help="timed POSTs per address")
    parser.add_argument("--warmup", type=int, default=5, help="untimed POSTs per address")
    parser.add_argument("--smtp-delay", type=float, default=0.05, help="seconds per message")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to serve")
    parser.add_argument(
        "--no-worker", action="store_true",
        help="run no worker: the request alone (codes the request does not send stay queued)",
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()

    with SmtpSink() as sink:
        sink.data_delay = args.smtp_delay
        env = app_env(sink)
        where = code_location(root, env)
        if not where.startswith(str(root)):
            raise SystemExit(f"{root} would serve {where}: run from a checkout with its code")
        log(f"serving {where} on PostgreSQL; SMTP accepts each message in {args.smtp_delay}s")
        fresh_database(root, env)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
             "--log-level", "warning", "wsgi:app"],
            env=env, cwd=root,
        )
        worker = None
        if not args.no_worker:
            worker = subprocess.Popen(
                [sys.executable, "-m", "flask", "notify", "worker"], env=env, cwd=root,
                stderr=subprocess.DEVNULL,
            )
        try:
            wait_for_server(port, server)
            known, unknown = Browser(port), Browser(port)
            for _ in range(args.warmup):
                known.timed_sign_in(KNOWN)
                unknown.timed_sign_in(UNKNOWN)
            times: dict[str, list[float]] = {KNOWN: [], UNKNOWN: []}
            pairs = [(known, KNOWN), (unknown, UNKNOWN)]
            for i in range(args.requests):
                for browser, identifier in pairs if i % 2 == 0 else pairs[::-1]:
                    times[identifier].append(browser.timed_sign_in(identifier))
            expected = args.warmup + args.requests
            if worker is None:
                expected = len(sink.messages)
            try:  # every code reaches the known address, and nothing goes anywhere else
                received = sink.wait_for(expected, timeout=60)
            except TimeoutError as exc:
                raise SystemExit(f"codes did not all arrive: {exc}") from None
            assert all(m.rcpt_tos == [KNOWN] for m in received)
        finally:
            for proc in (server, worker):
                if proc is None:
                    continue
                proc.terminate()
                proc.wait(timeout=10)

    med_known = statistics.median(times[KNOWN])
    med_unknown = statistics.median(times[UNKNOWN])
    log(f"{args.requests} sign-ins each, interleaved; {expected} codes arrived at {KNOWN}")
    print(
        f"bench signin_timing known_median_ms {med_known:.2f} "
        f"unknown_median_ms {med_unknown:.2f} difference_ms {med_known - med_unknown:+.2f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
