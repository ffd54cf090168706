"""`make soak` / `python -m soak [--minutes 8]`: the production stack under load and faults.

1. A fresh PostgreSQL database (`cc_soak` by default) built with `flask db upgrade`; the
   company's policy, a staff account, an API token and a webhook subscription made with the
   app's own `flask` commands; N members (50,000) inserted set-wise, verified by email and
   SMS; a sample of them saying yes through the consent service.
2. Its own `redis-server` on a free port, the receivers (`soak.sinks`), two gunicorn
   instances and two `flask notify worker` processes, all with CONSENT_CENTER_ENV=production
   and every production setting generated for the run.
3. Locust (`soak.load`) for the load phase while `soak.faults` breaks things on schedule and
   staff publish a policy version that fans out to every member by email and SMS.
4. The outbox drains (bounded), then `soak.checks` prints one line per figure and the run
   exits 1 if any invariant failed.

Every process it starts is stopped on exit, Ctrl-C included; the database's tables are dropped
unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from soak import checks, faults, seed  # noqa: E402

BIN = Path(sys.executable).parent
PUBLIC_HOST = "consent.soak.test"
STAFF_EMAIL = "staff@live.example.com"
WEB_WORKERS = 2
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/cc_soak"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signing_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


class SoakError(RuntimeError):
    """A step of the set-up failed: the run stops, cleans up and exits 2."""


class Stack:
    """The processes of the run and the settings they share."""

    def __init__(self, database_url: str, workdir: Path, backoff_base: int, lease: int) -> None:
        self.t0 = time.time()
        self.workdir = workdir
        self.database_url = database_url
        self.admin_url, self.db_name = seed.server_and_name(database_url)
        self.procs: dict[str, subprocess.Popen] = {}
        self.web_ports: dict[str, int] = {}
        self.redis_port = free_port()
        self.ports: dict = {}
        self.backoff_base = backoff_base
        self.lease = lease
        self.base_env = self._base_env()

    # -- settings ---------------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                ("FLASK_", "CONSENT_CENTER_", "MAIL_", "TWILIO_", "RATELIMIT_", "SMS_")
            )
            and k not in {"DATABASE_URL", "DATABASE_READ_URL", "SECRET_KEY", "LEDGER_KEY"}
            and k.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
        }
        env.update(
            FLASK_APP="consent_center:create_app",
            PYTHONUNBUFFERED="1",
            CONSENT_CENTER_ENV="production",
            # Fresh secrets per run, kept outside the database as production requires.
            SECRET_KEY=secrets.token_hex(32),
            LEDGER_KEY=secrets.token_hex(32),
            LEDGER_SIGNING_KEY=signing_key_pem(),
            PUBLIC_BASE_URL=f"https://{PUBLIC_HOST}",
            # The load generator stands for the one load balancer in front of the app.
            PROXY_FIX_HOPS="1",
            RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{self.redis_port}/0",
            MAIL_DEFAULT_SENDER="Consent Center <privacy@soak.test>",
            TWILIO_FROM_NUMBER="+15005550006",
            # 50,000 members by SMS: the site's hourly budget is set for such a notice.
            SMS_HOURLY_BUDGET="1000000",
            # The webhook receiver listens on 127.0.0.1.
            WEBHOOK_ALLOW_PRIVATE="true",
            NOTIFY_BACKOFF_BASE_SECONDS=str(self.backoff_base),
            NOTIFY_LEASE_SECONDS=str(self.lease),
        )
        return env

    def env(self, role: str) -> dict[str, str]:
        """The environment of one process; `role` names its database connections."""
        env = dict(self.base_env)
        env["DATABASE_URL"] = f"{self.database_url}?application_name=soak-{role}"
        if self.ports:
            env.update(
                MAIL_SERVER="127.0.0.1",
                MAIL_PORT=str(self.ports["smtp"]),
                TWILIO_ACCOUNT_SID=self.ports["account_sid"],
                TWILIO_AUTH_TOKEN=self.ports["auth_token"],
                TWILIO_API_BASE_URL=f"http://127.0.0.1:{self.ports['twilio']}",
            )
        else:  # set-up commands run before the receivers: production still wants them named
            env.update(
                MAIL_SERVER="127.0.0.1",
                TWILIO_ACCOUNT_SID="AC" + "0" * 32,
                TWILIO_AUTH_TOKEN="unused-before-the-receivers-start",
            )
        prom = self.workdir / f"prometheus-{role}"
        prom.mkdir(exist_ok=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
        return env

    # -- processes --------------------------------------------------------------------

    def log(self, message: str) -> None:
        print(f"[soak +{time.time() - self.t0:6.1f}s] {message}", flush=True)

    def spawn(self, name: str, cmd: list[str], env: dict | None = None, **kwargs):
        logfile = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env or self.base_env,
            stdout=kwargs.pop("stdout", logfile),
            stderr=logfile,
            start_new_session=True,
            **kwargs,
        )
        self.procs[name] = proc
        return proc

    def flask(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(BIN / "flask"), *args],
            cwd=ROOT,
            env=self.env("cli"),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and proc.returncode != 0:
            raise SoakError(
                f"`flask {' '.join(args)}` exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def start_redis(self) -> None:
        self.spawn(
            "redis",
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.redis_port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
            ],
        )  # fmt: skip
        self.wait_for_port(self.redis_port, "redis-server")

    def restart_redis(self) -> None:
        proc = self.procs["redis"]
        proc.terminate()
        proc.wait(timeout=10)
        self.start_redis()

    def start_sinks(self) -> None:
        proc = self.spawn("sinks", [sys.executable, "-m", "soak.sinks"], stdout=subprocess.PIPE)
        line = proc.stdout.readline()
        if not line:
            raise SoakError("the receivers did not start (see sinks.log)")
        self.ports = json.loads(line)

    def start_web(self, name: str) -> None:
        port = free_port()
        self.web_ports[name] = port
        conf = ROOT / "gunicorn.conf.py"
        if conf.exists():
            settings = ["-c", str(conf)]
        else:  # the same settings, spelled out (before gunicorn.conf.py existed)
            settings = ["--worker-class", "sync", "--timeout", "30", "--graceful-timeout", "20"]
        cmd = [
            str(BIN / "gunicorn"), *settings,
            "--bind", f"127.0.0.1:{port}", "--workers", str(WEB_WORKERS),
            "--chdir", str(ROOT), "wsgi:app",
        ]  # fmt: skip
        self.spawn(name, cmd, env=self.env(f"web-{name[-1]}"))

    def start_worker(self, name: str) -> None:
        self.spawn(
            name, [str(BIN / "flask"), "notify", "worker"], env=self.env(f"worker-{name[-1]}")
        )

    def wait_for_port(self, port: int, what: str, path: str | None = None, limit=60) -> None:
        deadline = time.time() + limit
        while time.time() < deadline:
            try:
                if path:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):
                        return
                else:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        return
            except OSError:
                time.sleep(0.2)
        raise SoakError(f"{what} did not answer on port {port} within {limit}s")

    def control(self, method: str, path: str):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ports['control']}{path}", method=method
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def sending_rows(self) -> int:
        import psycopg

        with psycopg.connect(self.database_url + "?application_name=soak-harness") as conn:
            return conn.execute(
                "SELECT count(*) FROM notification WHERE status = 'sending'"
            ).fetchone()[0]

    def keep_statistics(self, stop: threading.Event) -> str:
        """Stand in for autovacuum's ANALYZE where the server runs without it (this machine's
        PostgreSQL has autovacuum off): every 30 s, as autovacuum would after the fan-out's
        100,000 new rows. Without statistics the claim's plan takes minutes per batch."""
        import psycopg

        with psycopg.connect(self.admin_url) as conn:
            if conn.execute("SHOW autovacuum").fetchone()[0] == "on":
                return "autovacuum is on"

        def analyze() -> None:
            while not stop.wait(30.0):
                try:
                    with psycopg.connect(self.database_url, autocommit=True) as conn:
                        conn.execute("ANALYZE")
                except psycopg.Error:
                    pass  # the faults may cut this connection too; the next round retries

        threading.Thread(target=analyze, name="analyze", daemon=True).start()
        return "autovacuum is off on this server: the run ANALYZEs its database every 30 s"

    def stop_workers(self) -> None:
        """Stop the notify workers (each finishes the message in hand), so that the outbox and
        the receivers are compared at rest."""
        for name in ("worker-a", "worker-b"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name in ("worker-a", "worker-b"):
            proc = self.procs.get(name)
            if proc is not None:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)

    def stop_all(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
                except ProcessLookupError:
                    pass
            if proc.stdout is not None:
                proc.stdout.close()
            del self.procs[name]


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="length of the load phase")
    parser.add_argument("--members", type=int, default=50_000, help="members to fan out to")
    parser.add_argument("--users", type=int, default=None, help="Locust users (default by size)")
    parser.add_argument("--database-url", default=os.environ.get("SOAK_DATABASE_URL", DEFAULT_DB))
    parser.add_argument(
        "--drain-minutes", type=float, default=None, help="bound on the final drain"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    parser.add_argument("--report", type=Path, help="also write the figures as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_seconds = args.minutes * 60
    scale = min(1.0, load_seconds / faults.FULL_RUN_SECONDS)
    # The production backoff (30 s, doubling) and lease (120 s) in the full run; the short run
    # compresses them with everything else, so its retries fit its shorter drain.
    backoff = max(3, round(30 * scale))
    lease = max(20, round(120 * scale))
    # The drain waits for every message: a large fan-out needs time after the load.
    drain_seconds = (
        args.drain_minutes * 60
        if args.drain_minutes is not None
        else max(300.0, args.minutes * 30, args.members / 100)
    )
    users = args.users or (30 if args.minutes >= 4 else 16)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    stack = Stack(args.database_url, workdir, backoff, lease)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    status = 2
    try:
        status = run(stack, args, load_seconds, drain_seconds, users)
    except SoakError as exc:
        stack.log(f"SET-UP FAILED: {exc}")
    except KeyboardInterrupt:
        stack.log("interrupted")
        status = 130
    finally:
        stack.stop_all()
        if not args.keep:
            try:
                seed.empty_schema(args.database_url)
            except Exception as exc:  # noqa: BLE001 - cleanup reports, never masks the result
                stack.log(f"could not empty the soak database: {exc}")
            if status == 0:
                shutil.rmtree(workdir, ignore_errors=True)
        if status != 0 or args.keep:
            stack.log(f"logs kept in {workdir}")
    return status


def run(stack: Stack, args, load_seconds: float, drain_seconds: float, users: int) -> int:
    log = stack.log
    log(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
        f"{args.members} members, {users} users, {load_seconds:.0f}s of load"
    )
    seed.create_database(args.database_url)
    migrated = stack.flask("db", "upgrade", check=False)
    if migrated.returncode != 0 and "Multiple head" in migrated.stdout + migrated.stderr:
        stack.flask("db", "upgrade", "heads")  # branches not merged yet: apply them all
    elif migrated.returncode != 0:
        raise SoakError(f"flask db upgrade failed:\n{migrated.stdout}{migrated.stderr}")
    stack.start_redis()
    stack.start_sinks()
    token = seed.prepare(
        stack,
        args.members,
        webhook=f"http://127.0.0.1:{stack.ports['webhook']}/hook",
        staff_email=STAFF_EMAIL,
    )
    for name in ("web-a", "web-b"):
        stack.start_web(name)
    for name in ("worker-a", "worker-b"):
        stack.start_worker(name)
    for name in ("web-a", "web-b"):
        stack.wait_for_port(stack.web_ports[name], name, path="/healthz")
    statistics = threading.Event()
    log(stack.keep_statistics(statistics))
    ids, phones = seed.bulk_sample(args.database_url)
    ids_file, phones_file = stack.workdir / "member_ids.txt", stack.workdir / "phones.txt"
    ids_file.write_text("\n".join(ids))
    phones_file.write_text("\n".join(phones))
    log(f"stack up: web {stack.web_ports}, redis {stack.redis_port}, receivers {stack.ports}")

    # -- load and faults --------------------------------------------------------------
    requests_file = stack.workdir / "requests.jsonl"
    load_start = time.time()
    load_env = dict(os.environ)
    load_env.update(
        SOAK_HOSTS=",".join(f"http://127.0.0.1:{p}" for p in stack.web_ports.values()),
        SOAK_CONTROL=f"http://127.0.0.1:{stack.ports['control']}",
        SOAK_PUBLIC_HOST=PUBLIC_HOST,
        SOAK_API_TOKEN=token,
        SOAK_MEMBER_IDS=str(ids_file),
        SOAK_PHONES=str(phones_file),
        SOAK_STAFF_EMAIL=STAFF_EMAIL,
        SOAK_PUBLISH_AT=str(load_start + faults.PUBLISH_AT * load_seconds),
    )
    load = stack.spawn(
        "locust",
        [sys.executable, "-m", "soak.load", "--seconds", str(load_seconds),
         "--users", str(users), "--spawn-rate", "2", "--out", str(requests_file)],
        env=load_env,
    )  # fmt: skip
    injector = faults.Injector(stack, load_seconds)
    failures: list[str] = []

    def schedule() -> None:
        for fraction, name in faults.SCHEDULE:
            wait = load_start + fraction * load_seconds - time.time()
            if wait > 0:
                time.sleep(wait)
            try:
                injector.run(name)
            except Exception as exc:  # noqa: BLE001 - a fault that could not be made fails
                failures.append(f"fault {name} could not be injected: {exc!r}")
                log(failures[-1])

    chaos = threading.Thread(target=schedule, name="faults", daemon=True)
    chaos.start()
    load.wait(timeout=load_seconds + 120)
    chaos.join(timeout=60)
    log(
        f"load finished (exit {load.returncode}); draining the outbox "
        f"(at most {drain_seconds:.0f}s)"
    )

    # -- drain and check -------------------------------------------------------------
    drained_at = checks.wait_for_drain(stack, drain_seconds)
    alive = {name: proc.poll() is None for name, proc in stack.procs.items()}
    stack.stop_workers()
    statistics.set()
    report = stack.control("GET", "/report")
    figures = checks.Figures(
        stack, requests_file, report, injector.faults, load_start, drained_at, failures, alive
    )
    figures.run_all()
    figures.lines.append(
        f"{'machine':<34} load average {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} "
        f"cores at the end; the run took {time.time() - stack.t0:.0f}s"
    )
    for line in figures.lines:
        print(line, flush=True)
    if args.report:
        args.report.write_text(json.dumps(figures.summary, indent=1, default=str))
    if figures.failed:
        log(f"FAILED: {len(figures.failed)} invariant(s): {', '.join(figures.failed)}")
        return 1
    log("PASSED: every invariant held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
