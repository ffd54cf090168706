"""The figures of a soak run and the invariants they must meet.

`Figures.run_all()` fills `lines` (one printed line per figure) and `failed` (the names of the
invariants that did not hold). The invariants:

- **no unexplained failure**: every 5xx answer and every connection error seen by the load
  matches a fault by its time: a request in flight on the gunicorn worker that was killed,
  the first statement on a PostgreSQL connection that was terminated (at most one request
  per terminated connection), or a request while the soak's Redis was restarting;
- **ledger == state** for every member and purpose, and `flask ledger verify` and
  `flask audit verify` pass (every chain verifies);
- **exactly once**: every email the outbox marked sent reached the SMTP server exactly once
  (by its Message-ID, which is the row's public id) and no other email arrived; every SMS it
  marked sent reached the Twilio stand-in exactly once (by the provider's message id the row
  records) and none other; per recipient, the counts at the receivers equal the outbox's;
  every webhook delivery arrived once (by its event id);
- **none lost**: after the drain nothing is pending or being sent; whatever was given up is
  `dead` or `failed` with its reason;
- the policy notice fanned out to every reachable member, on both channels, within the run.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import psycopg

# For every member and purpose, the state row against the latest event (one query).
from bench.run import INVARIANT_SQL

HTTP_TYPES = {"GET", "POST"}
# A stale pooled connection fails on its first use after pg_terminate_backend; the pools are
# used within seconds under this load, so a failure later than this is not that.
STALE_CONNECTION_WINDOW = 60.0
REDIS_GRACE = 2.0
SLACK = 0.5
# A message is "in flight" at a fault when the receiver accepted it this shortly before.
IN_FLIGHT_WINDOW = 5.0


def _connect(stack):
    return psycopg.connect(stack.database_url + "?application_name=soak-harness")


def outstanding(stack) -> int:
    with _connect(stack) as conn:
        return conn.execute(
            "SELECT count(*) FROM notification WHERE status IN ('pending', 'sending')"
        ).fetchone()[0]


def webhooks_owed(stack) -> set[str]:
    """The event ids every active subscription is owed and its receiver has not had yet:
    webhooks are the change feed, delivered by a cursor per subscription, so the outbox being
    empty says nothing about them (a subscription leased by a killed worker waits for its
    lease to end)."""
    expected: set[str] = set()
    with _connect(stack) as conn:
        for added, kinds in conn.execute(
            "SELECT created_at, events FROM webhook_subscription WHERE active"
        ).fetchall():
            if "consent.changed" in kinds.split(","):
                expected |= {row[0] for row in conn.execute(
                    "SELECT receipt_id FROM consent_event WHERE created_at >= %s", (added,)
                )}  # fmt: skip
            if "member.erased" in kinds.split(","):
                expected |= {row[0] for row in conn.execute(
                    "SELECT public_id FROM change_event WHERE type = 'member.erased'"
                    " AND created_at >= %s", (added,)
                )}  # fmt: skip
    return expected


def wait_for_drain(stack, seconds: float) -> float | None:
    """Wait until nothing is pending or being sent in the outbox and every webhook owed has
    reached its receiver; the time it happened, or None."""
    deadline = time.time() + seconds
    last_report = 0.0
    while time.time() < deadline:
        left = outstanding(stack)
        hooks = 0
        if left == 0:
            received = {h["event_id"] for h in stack.control("GET", "/report")["webhooks"]}
            hooks = len(webhooks_owed(stack) - received)
            if hooks == 0:
                return time.time()
        if time.time() - last_report > 15:
            stack.log(f"  {left} messages still pending or being sent, {hooks} webhooks owed")
            last_report = time.time()
        time.sleep(1.0)
    return None


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def _ts(value) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class Figures:
    def __init__(
        self,
        stack,
        requests_file: Path,
        report: dict,
        faults,
        load_start: float,
        drained_at: float | None,
        failures: list[str],
        alive: dict[str, bool],
    ) -> None:
        self.alive = alive
        self.stack = stack
        self.records = (
            [json.loads(line) for line in requests_file.read_text().splitlines() if line.strip()]
            if requests_file.exists()
            else []
        )
        self.report = report
        self.faults = faults
        self.load_start = load_start
        self.drained_at = drained_at
        self.lines: list[str] = []
        self.failed: list[str] = list(f.split(":")[0] for f in failures)
        self.summary: dict = {"setup_failures": failures}
        self._repeat_budget: dict = {}
        self.lines.extend(failures)

    def line(self, name: str, text: str, ok: bool | None = None) -> None:
        mark = "" if ok is None else ("  ok" if ok else "  FAIL")
        self.lines.append(f"{name:<34} {text}{mark}")
        if ok is False:
            self.failed.append(name)

    def run_all(self) -> None:
        t0 = self.stack.t0
        for fault in self.faults:
            self.lines.append(fault.line(t0))
        self.processes()
        self.requests()
        self.errors()
        self.latencies()
        self.ledger()
        self.chains()
        self.messages()
        self.fan_out()
        self.webhooks()

    # -- traffic ----------------------------------------------------------------------

    def processes(self) -> None:
        """Every process of the stack still runs (a killed worker was started again)."""
        gone = [name for name, up in self.alive.items() if not up and name != "locust"]
        self.line(
            "processes alive",
            ", ".join(sorted(self.alive)) + (f"; exited: {', '.join(gone)}" if gone else ""),
            not gone,
        )

    def http(self) -> list[dict]:
        return [r for r in self.records if r["type"] in HTTP_TYPES]

    def requests(self) -> None:
        http = self.http()
        by_status = Counter((r["status"] or 0) // 100 for r in http)
        instances = Counter(r["instance"] for r in http)
        self.summary["requests"] = len(http)
        self.line(
            "requests served",
            f"{len(http)} ({', '.join(f'{k}xx={v}' for k, v in sorted(by_status.items()))}); "
            f"per instance {dict(instances)}",
            len(http) > 0 and len(instances) == 2,
        )
        limited = sum(1 for r in http if r["status"] == 429)
        self.line("rate-limited (429)", str(limited))
        # A right code and a no-JS toggle answer 303 (then the page); htmx toggles 200.
        signed_in = sum(1 for r in http if r["name"] == "sign-in: code" and r["status"] == 303)
        toggles = sum(
            1
            for r in http
            if r["name"] in ("toggle: form", "toggle: htmx") and r["status"] in (200, 303)
        )
        self.line(
            "sign-ins and toggles",
            f"{signed_in} sign-ins, {toggles} toggles",
            signed_in > 0 and toggles > 0,
        )

    def _explain(self, r: dict) -> str | None:
        start = r["t"]
        end = start + (r["ms"] or 0) / 1000
        for fault in self.faults:
            if fault.name == "kill_gunicorn_worker":
                if (
                    r["instance"] == fault.detail.get("instance")
                    and start - SLACK <= fault.started <= end + SLACK
                ):
                    return f"in flight on gunicorn worker {fault.detail['pid']} (SIGKILL)"
            elif fault.name == "terminate_db_connections":
                # In flight when the connection was cut, or its first use afterwards.
                if (
                    r["status"] == 500
                    and end >= fault.started - SLACK
                    and start <= fault.ended + STALE_CONNECTION_WINDOW
                    and self._stale_budget[id(fault)] > 0
                ):
                    self._stale_budget[id(fault)] -= 1
                    return "on a terminated PostgreSQL connection"
            elif fault.name == "restart_redis":
                if fault.started - SLACK <= end and start <= fault.ended + REDIS_GRACE:
                    return "during the Redis restart"
        return None

    def errors(self) -> None:
        self._stale_budget = {
            id(f): f.detail.get("web_connections", 0)
            for f in self.faults
            if f.name == "terminate_db_connections"
        }
        bad = [r for r in self.http() if not r["status"] or r["status"] >= 500]
        explained, unexplained = Counter(), []
        for r in sorted(bad, key=lambda r: r["t"]):
            why = self._explain(r)
            if why:
                explained[why] += 1
            else:
                unexplained.append(r)
        fives = sum(1 for r in bad if r["status"])
        self.summary["errors"] = {
            "5xx": fives,
            "connection": len(bad) - fives,
            "explained": dict(explained),
            "unexplained": len(unexplained),
        }
        self.line(
            "5xx and connection errors",
            f"{fives} 5xx, {len(bad) - fives} connection errors; explained: "
            + (", ".join(f"{n} {why}" for why, n in explained.items()) or "none needed")
            + f"; unexplained {len(unexplained)}",
            not unexplained,
        )
        for r in unexplained[:20]:
            self.lines.append(
                f"  unexplained: +{r['t'] - self.stack.t0:.1f}s {r['name']} status={r['status']}"
                f" instance={r['instance']} {r['error'] or ''}"
            )

    def latencies(self) -> None:
        by_kind = defaultdict(list)
        for r in self.records:
            if r["type"] in HTTP_TYPES or r["type"] == "WAIT":
                if r["status"] and r["status"] < 500 or r["type"] == "WAIT":
                    by_kind[r["name"]].append(r["ms"])
        self.summary["latency_ms"] = {}
        for kind in sorted(by_kind):
            values = by_kind[kind]
            p50, p99 = percentile(values, 50), percentile(values, 99)
            self.summary["latency_ms"][kind] = {"n": len(values), "p50": p50, "p99": p99}
            self.line(f"latency {kind}", f"n={len(values)} p50={p50:.0f}ms p99={p99:.0f}ms")

    # -- ledger -----------------------------------------------------------------------

    def ledger(self) -> None:
        with _connect(self.stack) as conn:
            cur = conn.execute(INVARIANT_SQL)
            row = dict(zip([c.name for c in cur.description], cur.fetchone(), strict=True))
        problems = {k: v for k, v in row.items() if k != "pairs" and v}
        self.summary["ledger_state"] = row
        self.line(
            "ledger == state",
            f"{row['pairs']} member-purpose pairs; "
            + (", ".join(f"{k}={v}" for k, v in problems.items()) or "no drift"),
            not problems,
        )

    def chains(self) -> None:
        for name in ("ledger", "audit"):
            proc = self.stack.flask(name, "verify", check=False)
            out = (proc.stdout.strip().splitlines() or [""])[-1]
            self.summary[f"{name}_verify"] = {"exit": proc.returncode, "output": out}
            self.line(f"flask {name} verify", out, proc.returncode == 0)
            if proc.returncode != 0:
                self.lines.extend("  " + x for x in proc.stderr.strip().splitlines()[:10])

    # -- messages ---------------------------------------------------------------------

    def messages(self) -> None:
        with _connect(self.stack) as conn:
            rows = conn.execute(
                "SELECT public_id, channel, kind, recipient, status, provider_id, last_error,"
                " dedupe_key FROM notification"
            ).fetchall()
        by_status = Counter((channel, status) for _, channel, _, _, status, _, _, _ in rows)
        self.summary["outbox"] = {f"{c}/{s}": n for (c, s), n in by_status.items()}
        self.line(
            "outbox",
            f"{len(rows)} rows: "
            + ", ".join(f"{c} {s}={n}" for (c, s), n in sorted(by_status.items())),
        )
        self._exactly_once_email(rows)
        self._exactly_once_sms(rows)
        self._none_lost(rows)

    def _in_flight_at_fault(self, channel: str, at: float) -> str | None:
        """The fault a message sent again was in flight at: sent (its first copy) shortly
        before a notify worker was killed, or before the database cut the connections the
        outcome is recorded on. Each such fault explains at most one message per channel per
        worker it hit (a worker sends one message at a time and records it at once)."""
        for fault in self.faults:
            if fault.name not in ("kill_notify_worker", "terminate_db_connections"):
                continue
            key = (id(fault), channel)
            budget = 1 if fault.name == "kill_notify_worker" else 2
            if (
                fault.started - IN_FLIGHT_WINDOW <= at <= fault.ended + SLACK
                and self._repeat_budget.get(key, 0) < budget
            ):
                self._repeat_budget[key] = self._repeat_budget.get(key, 0) + 1
                return f"in flight at {fault.name}"
        return None

    def _exactly_once_email(self, rows) -> None:
        first_at: dict[str, float] = {}
        received: Counter = Counter()
        for mid, _rcpt, at in self.report["email"]:
            key = mid.strip("<>").split("@")[0]
            received[key] += 1
            first_at[key] = min(at, first_at.get(key, at))
        per_rcpt = Counter(rcpt for _, rcpt, _ in self.report["email"])
        sent = {r[0]: r for r in rows if r[1] == "email" and r[4] in ("sent", "delivered")}
        explained, twice = Counter(), []
        for key, n in received.items():
            if n > 1:
                why = self._in_flight_at_fault("email", first_at[key]) if n == 2 else None
                if why:
                    explained[why] += 1
                else:
                    twice.append(key)
        missing = [k for k in sent if received.get(k, 0) == 0]
        unknown = [k for k in received if k not in sent]
        # Per recipient, counting each Message-ID once (a repeat is judged above).
        distinct = Counter(rcpt for _mid, rcpt in {(m, r) for m, r, _ in self.report["email"]})
        expected_rcpt = Counter((r[3] or "").lower() for r in sent.values() if r[3])
        rcpt_diff = sum(1 for a in expected_rcpt if distinct.get(a, 0) != expected_rcpt[a])
        ok = not twice and not missing and not unknown and rcpt_diff == 0
        self.summary["email"] = {
            "sent": len(sent),
            "received": sum(received.values()),
            "twice": len(twice),
            "repeats_explained": dict(explained),
            "missing": len(missing),
            "unrecorded": len(unknown),
            "recipients_differing": rcpt_diff,
        }
        self.line(
            "email exactly once",
            f"{len(sent)} sent per the outbox, {sum(received.values())} received by "
            f"{len(per_rcpt)} recipients; twice={len(twice)} missing={len(missing)} "
            f"unrecorded={len(unknown)} recipients-differing={rcpt_diff}"
            + "".join(f"; {n} sent again, {why} (same Message-ID)" for why, n in explained.items()),
            ok,
        )

    def _exactly_once_sms(self, rows) -> None:
        sms = self.report["sms"]
        received = Counter(m["sid"] for m in sms)
        sent = {r[5]: r for r in rows if r[1] == "sms" and r[4] in ("sent", "delivered")}
        missing = [sid for sid in sent if sid not in received]
        expected_to = Counter(r[3] for r in sent.values() if r[3])
        # A text the stand-in accepted whose id no row records was sent and then sent again
        # (the row holds the second id), unless a fault it was in flight at explains it.
        explained, unknown = Counter(), []
        for m in sms:
            if m["sid"] in sent:
                continue
            why = self._in_flight_at_fault("sms", m["at"]) if m["to"] in expected_to else None
            if why:
                explained[why] += 1
            else:
                unknown.append(m)
        per_to = Counter(m["to"] for m in sms if m["sid"] in sent)
        to_diff = sum(1 for a in expected_to if per_to.get(a, 0) != expected_to[a])
        ok = not missing and not unknown and to_diff == 0
        self.summary["sms"] = {
            "sent": len(sent),
            "received": len(sms),
            "missing": len(missing),
            "unrecorded": len(unknown),
            "repeats_explained": dict(explained),
            "numbers_differing": to_diff,
            "refused": self.report.get("sms_refused"),
        }
        self.line(
            "sms exactly once",
            f"{len(sent)} sent per the outbox, {len(sms)} received by "
            f"{len(set(m['to'] for m in sms))} numbers; missing={len(missing)} "
            f"unrecorded={len(unknown)} numbers-differing={to_diff}"
            + "".join(f"; {n} sent again, {why}" for why, n in explained.items())
            + f"; stand-in refused {self.report.get('sms_refused')}",
            ok,
        )

    def _none_lost(self, rows) -> None:
        open_rows = [r for r in rows if r[4] in ("pending", "sending")]
        given_up = [r for r in rows if r[4] in ("dead", "failed")]
        reasons = Counter((r[2], r[4], (r[6] or "NO REASON")[:60]) for r in given_up)
        no_reason = sum(1 for r in given_up if not r[6])
        self.summary["given_up"] = {f"{k} {s}: {e}": n for (k, s, e), n in reasons.items()}
        drained = (
            f"drained {self.drained_at - self.load_start:.0f}s after the load began"
            if self.drained_at
            else "NOT drained within the bound"
        )
        self.line(
            "none lost",
            f"{len(open_rows)} pending or sending, {len(given_up)} given up with a reason "
            f"({no_reason} without); {drained}",
            self.drained_at is not None and not open_rows and no_reason == 0,
        )
        for (kind, status, error), n in sorted(reasons.items(), key=lambda x: -x[1])[:8]:
            self.lines.append(f"  {n} {kind} {status}: {error}")

    def fan_out(self) -> None:
        with _connect(self.stack) as conn:
            found = conn.execute(
                "SELECT f.id, f.total, p.published_at FROM fan_out f JOIN policy_version p"
                " ON f.cause = 'policy_version:' || p.number WHERE f.kind = 'policy_notice'"
                " ORDER BY f.id DESC LIMIT 1"
            ).fetchone()
            if found is None:
                self.line("fan-out", "staff never published the new version", False)
                return
            fan_id, total, published = found
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE channel = 'email'),"
                " count(*) FILTER (WHERE channel = 'sms'),"
                " count(*) FILTER (WHERE status IN ('sent', 'delivered')), max(sent_at)"
                " FROM notification WHERE fan_out_id = %s",
                (fan_id,),
            ).fetchone()
            # Every seeded member chose email and SMS notices.
            seeded = conn.execute(
                "SELECT count(*) FROM member WHERE email LIKE 'bulk-%%'"
            ).fetchone()[0]
        rows, email, sms, sent, last = row
        seconds = (last - published).total_seconds() if last else float("nan")
        complete = sent == rows == total and email >= seeded and sms >= seeded
        self.summary["fan_out"] = {
            "rows": rows,
            "email": email,
            "sms": sms,
            "sent": sent,
            "seconds": seconds,
            "published_at": published,
        }
        self.line(
            "fan-out",
            f"{rows} of {total} notices ({email} email, {sms} SMS; {seeded} seeded members)"
            + (
                f", all sent, the last {seconds:.0f}s after publishing"
                if sent == rows
                else f", only {sent} sent, the last {seconds:.0f}s after publishing"
            )
            + f" ({sent / seconds if seconds else 0:.0f} msg/s)",
            complete,
        )

    def webhooks(self) -> None:
        hooks = self.report["webhooks"]
        ids = Counter(h["event_id"] for h in hooks)
        first_at: dict[str, float] = {}
        for h in hooks:
            first_at[h["event_id"]] = min(h["at"], first_at.get(h["event_id"], h["at"]))
        # A worker posts one event at a time and moves the subscription's cursor past it as
        # soon as it is answered: killed (or its connection cut) between the two, it leaves
        # that one event to be posted again after the lease, like a message in flight.
        explained, twice = Counter(), 0
        for event_id, n in ids.items():
            if n > 1:
                why = self._in_flight_at_fault("webhook", first_at[event_id]) if n == 2 else None
                if why:
                    explained[why] += 1
                else:
                    twice += 1
        # Every ledger event and erasure notice made after a subscription was added is owed
        # to it once (`webhooks_owed`).
        expected = webhooks_owed(self.stack)
        missing, unexpected = expected - set(ids), set(ids) - expected
        self.summary["webhooks"] = {
            "owed": len(expected),
            "received": len(hooks),
            "twice": twice,
            "repeats_explained": dict(explained),
            "missing": len(missing),
        }
        self.line(
            "webhooks exactly once",
            f"{len(expected)} owed per the ledger, {len(hooks)} received, {len(ids)} distinct "
            f"events, {twice} twice, {len(missing)} missing, {len(unexpected)} not in the ledger"
            + "".join(f"; {n} posted again, {why}" for why, n in explained.items()),
            twice == 0 and not missing and not unexpected,
        )
        lags = [
            (h["at"] - _ts(h["created_at"])) * 1000
            for h in hooks
            if h["method"] in ("form", "htmx") and h["created_at"]
        ]
        self.summary["toggle_to_webhook_ms"] = {
            "n": len(lags),
            "p50": percentile(lags, 50),
            "p99": percentile(lags, 99),
        }
        self.line(
            "toggle -> webhook receiver",
            f"n={len(lags)} p50={percentile(lags, 50):.0f}ms p99={percentile(lags, 99):.0f}ms"
            + (f"; {len(missing)} deliveries missing (not in these figures)" if missing else ""),
            len(lags) > 0,
        )
        if lags:
            self.summary["toggle_to_webhook_ms"]["median"] = statistics.median(lags)
