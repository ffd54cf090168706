"""`python -m soak.rates`: how fast two notify workers deliver a policy notice through the
soak's own receivers, one channel at a time, with nothing else running.

The soak's fan-out (50,000 members by email and by SMS) must be delivered within its drain
bound while the load runs beside it. This measures each channel alone on the same stack as the
soak (its database set-up, `soak.sinks`, two `flask notify worker` processes in production
mode) and the CPU time each process spends per message, so that a slow receiver or a slow send
path shows up by itself (docs/soak.md, "Delivery rates"):

    .venv/bin/python -m soak.rates --members 10000      # email, then SMS

Each channel gets a fresh database: N members who chose notices on that channel only, a policy
version published through the service (the notice fans out to all of them), then the workers
start and the run waits until nothing is pending or being sent. The rate is the notices sent
divided by the time from the first to the last one sent.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from soak import harness, seed  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pgid: int) -> float:
    """User and system CPU time of every live process in the process group `pgid`."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def publish_notice(stack) -> None:
    """Publish a policy version through the service; its notice fans out to every member."""
    os.environ.update(stack.env("harness"))
    from consent_center import create_app
    from consent_center.domain import Locale
    from consent_center.extensions import db
    from consent_center.models.policy import PolicyText
    from consent_center.services.policies import publish_policy

    app = create_app("production")
    with app.app_context():
        publish_policy(
            actor=None,
            texts={
                Locale.EN: PolicyText(
                    Locale.EN, "Privacy policy", "# Privacy policy\n\nMeasured.\n", "Measured."
                ),
                Locale.ZH: PolicyText(Locale.ZH, "隐私政策", "# 隐私政策\n\n测量。\n", "测量。"),
            },
            effective_at=datetime.now(UTC) + timedelta(days=31),
            config=app.config,
        )
        db.session.commit()
        db.engine.dispose()


def open_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM notification WHERE status IN ('pending', 'sending')"
        ).fetchone()[0]


def measure(args, channel: str) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"rates-{channel}-"))
    # The production backoff and lease: nothing fails here, so neither comes into play.
    stack = harness.Stack(args.database_url, workdir, backoff_base=30, lease=120)
    try:
        seed.create_database(args.database_url)
        stack.flask("db", "upgrade")
        stack.start_redis()
        stack.start_sinks()
        seed.prepare(
            stack,
            args.members,
            webhook=f"http://127.0.0.1:{stack.ports['webhook']}/hook",
            staff_email=harness.STAFF_EMAIL,
            channels=(channel,),
        )
        publish_notice(stack)
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute("ANALYZE")  # as autovacuum would after the fan-out's rows
        with psycopg.connect(args.database_url) as conn:
            due = conn.execute(
                "SELECT count(*) FROM notification WHERE kind = 'policy_notice' AND channel = %s",
                (channel,),
            ).fetchone()[0]
        stack.log(f"{channel}: {due} notices due; starting two workers")
        for name in ("worker-a", "worker-b"):
            stack.start_worker(name)
        deadline = time.time() + args.limit
        while open_rows(args.database_url) and time.time() < deadline:
            time.sleep(0.5)
        cpu = {name: cpu_seconds(proc.pid) for name, proc in stack.procs.items()}
        with psycopg.connect(args.database_url) as conn:
            sent, first, last = conn.execute(
                "SELECT count(*), min(sent_at), max(sent_at) FROM notification"
                " WHERE kind = 'policy_notice' AND status = 'sent' AND channel = %s",
                (channel,),
            ).fetchone()
        seconds = (last - first).total_seconds() if sent > 1 else float("nan")
        return {
            "channel": channel,
            "due": due,
            "sent": sent,
            "seconds": seconds,
            "rate": sent / seconds if seconds else float("nan"),
            "cpu_ms_per_message": {
                "workers": 1000 * (cpu["worker-a"] + cpu["worker-b"]) / max(sent, 1),
                "receivers": 1000 * cpu["sinks"] / max(sent, 1),
            },
        }
    finally:
        stack.stop_all()
        seed.empty_schema(args.database_url)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak.rates", description=__doc__)
    parser.add_argument("--members", type=int, default=10_000, help="members to notify")
    parser.add_argument("--channel", choices=("email", "sms"), action="append")
    parser.add_argument(
        "--database-url", default=os.environ.get("SOAK_DATABASE_URL", harness.DEFAULT_DB)
    )
    parser.add_argument("--limit", type=float, default=600, help="seconds to wait at most")
    args = parser.parse_args(argv)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    complete = True
    for channel in args.channel or ("email", "sms"):
        r = measure(args, channel)
        complete &= r["sent"] == r["due"]
        print(
            f"{channel:<5} {r['sent']} of {r['due']} sent in {r['seconds']:.1f}s: "
            f"{r['rate']:.0f} msg/s; CPU per message: workers "
            f"{r['cpu_ms_per_message']['workers']:.2f} ms, receivers "
            f"{r['cpu_ms_per_message']['receivers']:.2f} ms",
            flush=True,
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
