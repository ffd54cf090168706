"""The faults injected while the load runs, and when.

Each fault happens at a fixed fraction of the load phase, so the 2-minute variant has the same
faults in the same order, compressed; outages last OUTAGE_SECONDS in the full run and a
proportional share (at least 10 s) of a shorter one. Every fault is recorded with its start
and end, so that a failed request can be matched to the fault it was caught in.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

import psycopg

OUTAGE_SECONDS = 30.0
FULL_RUN_SECONDS = 480.0

# (fraction of the load phase, fault). The policy publish (by staff, over HTTP) comes first
# so that the fan-out is being delivered while the workers, SMTP and Twilio are hit.
PUBLISH_AT = 0.10
SCHEDULE = (
    (0.20, "kill_notify_worker"),
    (0.28, "kill_gunicorn_worker"),
    (0.34, "smtp_down"),
    (0.50, "twilio_errors"),
    (0.66, "terminate_db_connections"),
    (0.80, "restart_redis"),
)


@dataclass
class Fault:
    name: str
    started: float
    ended: float
    detail: dict = field(default_factory=dict)

    def line(self, t0: float) -> str:
        what = ", ".join(f"{k}={v}" for k, v in self.detail.items())
        return (
            f"fault {self.name:<26} at +{self.started - t0:6.1f}s for "
            f"{self.ended - self.started:5.1f}s  {what}"
        )


def outage_seconds(load_seconds: float) -> float:
    return max(10.0, min(OUTAGE_SECONDS, OUTAGE_SECONDS * load_seconds / FULL_RUN_SECONDS))


def children_of(pid: int) -> list[int]:
    """Child process ids (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


class Injector:
    """Carries out each fault on the running stack (`soak.harness.Stack`)."""

    def __init__(self, stack, load_seconds: float) -> None:
        self.stack = stack
        self.outage = outage_seconds(load_seconds)
        self.faults: list[Fault] = []

    def run(self, name: str) -> Fault:
        fault = getattr(self, name)()
        self.faults.append(fault)
        self.stack.log(fault.line(self.stack.t0))
        return fault

    def kill_notify_worker(self) -> Fault:
        """SIGKILL a notify worker while it holds a claimed batch, then start it again."""
        name = "worker-a"
        deadline = time.time() + min(20.0, self.outage)
        mid_batch = False
        while time.time() < deadline:  # wait until the worker holds a batch in flight
            if self.stack.sending_rows() > 0:
                mid_batch = True
                break
            time.sleep(0.05)
        proc = self.stack.procs[name]
        started = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        held = self.stack.sending_rows()
        time.sleep(1.0)
        self.stack.start_worker(name)
        return Fault(
            "kill_notify_worker",
            started,
            time.time(),
            {"pid": proc.pid, "rows_in_flight": held, "mid_batch": mid_batch},
        )

    def kill_gunicorn_worker(self) -> Fault:
        """SIGKILL one gunicorn worker of the first instance; its arbiter starts another."""
        name = "web-a"
        arbiter = self.stack.procs[name]
        workers = children_of(arbiter.pid)
        if not workers:
            raise RuntimeError("gunicorn has no workers to kill")
        victim = workers[0]
        started = time.time()
        os.kill(victim, signal.SIGKILL)
        deadline = time.time() + 30
        while time.time() < deadline:
            now = children_of(arbiter.pid)
            if victim not in now and len(now) >= len(workers):
                break
            time.sleep(0.1)
        return Fault(
            "kill_gunicorn_worker",
            started,
            time.time(),
            {"pid": victim, "instance": self.stack.web_ports[name]},
        )

    def smtp_down(self) -> Fault:
        started = time.time()
        self.stack.control("POST", f"/smtp/down?seconds={self.outage}")
        return Fault("smtp_down", started, started + self.outage, {})

    def twilio_errors(self) -> Fault:
        started = time.time()
        self.stack.control("POST", f"/twilio/fail?seconds={self.outage}")
        return Fault("twilio_500_then_429", started, started + self.outage, {})

    def terminate_db_connections(self) -> Fault:
        """pg_terminate_backend on every connection of the app (web and workers)."""
        started = time.time()
        with psycopg.connect(self.stack.admin_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT application_name, pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name LIKE 'soak-%%'"
                " AND application_name <> 'soak-harness' AND pid <> pg_backend_pid()",
                (self.stack.db_name,),
            ).fetchall()
        web = sum(1 for app, ok in rows if ok and app.startswith("soak-web"))
        workers = sum(1 for app, ok in rows if ok and app.startswith("soak-worker"))
        return Fault(
            "terminate_db_connections",
            started,
            time.time(),
            {"web_connections": web, "worker_connections": workers},
        )

    def restart_redis(self) -> Fault:
        started = time.time()
        self.stack.restart_redis()
        return Fault("restart_redis", started, time.time(), {"port": self.stack.redis_port})
