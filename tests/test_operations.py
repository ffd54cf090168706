"""Operations: liveness and readiness probes, request ids (into outbox rows and webhooks),
Prometheus metrics (each one seen changing in a scrape) and production's JSON logs."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.test import Client

from consent_center import create_app
from consent_center.config import ProductionConfig, load_config
from consent_center.domain import Actor, Method
from consent_center.extensions import db
from consent_center.metrics import NodeCollector, metrics_wsgi_app
from consent_center.models import Notification
from consent_center.notify.worker import drain
from consent_center.observability import JsonFormatter, configure_logging, set_request_id
from consent_center.services.consents import set_consent
from consent_center.services.outgoing_webhooks import add_webhook
from consent_center.services.sms_guard import spend_sms
from tests.conftest import make_member, post
from tests.support.api import bearer, grant, make_token, webhook_receiver

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(app) -> dict[str, float]:
    """The metrics server's answer, as {'name{labels}': value}."""
    body = Client(metrics_wsgi_app(app)).get("/").get_data(as_text=True)
    samples = {}
    for line in body.splitlines():
        match = SAMPLE.match(line)
        if match:
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def sample(samples: dict[str, float], name: str, **labels: str) -> float:
    """The value of one sample (0 when absent); labels in any order."""
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        if base == name and set(filter(None, rest.rstrip("}").split(","))) == wanted:
            return value
    return 0.0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Probes --------------------------------------------------------------------------------


def test_healthz_says_the_process_is_alive_without_touching_the_database(app, monkeypatch):
    def broken(*args, **kwargs):
        raise AssertionError("liveness must not depend on the database")

    monkeypatch.setattr(db.session, "execute", broken)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_readyz_checks_the_database_and_the_rate_limit_storage(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {
        "status": "ok",
        "checks": {"database": "ok", "rate_limit_storage": "ok"},
    }


def test_readyz_is_ready_with_redis_storage():
    app = create_app("testing", SQLALCHEMY_DATABASE_URI="sqlite://",
                     RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/13")  # fmt: skip
    response = app.test_client().get("/readyz")
    assert response.status_code == 200, response.json


def test_readyz_503_names_unreachable_redis_and_nothing_else():
    port = closed_port()
    app = create_app("testing", SQLALCHEMY_DATABASE_URI="sqlite://",
                     RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{port}/0")  # fmt: skip
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json == {
        "status": "unavailable",
        "checks": {"database": "ok", "rate_limit_storage": "unreachable"},
    }
    assert str(port) not in response.get_data(as_text=True)


def test_readyz_503_names_an_unreachable_database():
    port = closed_port()
    url = f"postgresql+psycopg://postgres:sekret@127.0.0.1:{port}/nowhere?connect_timeout=2"
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": "unreachable", "rate_limit_storage": "ok"}
    text = response.get_data(as_text=True)
    assert "sekret" not in text and str(port) not in text
    assert app.test_client().get("/healthz").status_code == 200  # alive all the same


# --- Request ids ---------------------------------------------------------------------------


def test_a_well_formed_request_id_is_kept_and_any_other_replaced(client):
    given = "3f1c2a9e-7b1d-4c55-9a57-0d3e5b1c2f10"
    assert client.get("/", headers={"X-Request-Id": given}).headers["X-Request-Id"] == given
    for hostile in ("short", "a b c d e f g h", "x" * 65, "<script>alert(1)</script>"):
        got = client.get("/", headers={"X-Request-Id": hostile}).headers["X-Request-Id"]
        assert got != hostile and re.fullmatch(r"[0-9a-f]{32}", got)
    first, second = (client.get("/healthz").headers["X-Request-Id"] for _ in range(2))
    assert first != second
    assert client.get("/no/such/page").headers["X-Request-Id"]  # errors carry one too


def test_the_request_id_is_stored_on_the_messages_the_request_wrote(client, member):
    response = post(client, "/sign-in", {"identifier": member.email},
                    headers={"X-Request-Id": "req-sign-in-0001"})  # fmt: skip
    assert response.status_code == 303
    [row] = db.session.scalars(select(Notification)).all()
    assert row.request_id == "req-sign-in-0001"


def test_a_fan_out_s_rows_carry_the_request_id_of_the_publish(app, member):
    from datetime import timedelta

    from consent_center import clock
    from consent_center.services.policies import publish_policy
    from tests.conftest import policy_texts

    make_member()
    set_request_id("req-publish-00007")
    try:
        publish_policy(actor=None, texts=policy_texts("# P\n\nNew.\n", summary="Clearer"),
                       effective_at=clock.utcnow() + timedelta(days=8),
                       config=app.config)  # fmt: skip
        db.session.commit()
    finally:
        set_request_id(None)
    rows = db.session.scalars(select(Notification)).all()
    assert len(rows) == 2 and {row.request_id for row in rows} == {"req-publish-00007"}


def test_messages_written_outside_a_request_have_no_request_id(app, member, policy):
    from datetime import timedelta

    from consent_center import clock
    from consent_center.models import ConsentEvent
    from consent_center.services.policies import publish_policy
    from tests.conftest import policy_texts

    set_request_id(None)  # as in a command or the worker (a test client may leave one set)
    grant(member, "trend_analysis")
    publish_policy(actor=None, texts=policy_texts("# P\n\nNew.\n"),
                   effective_at=clock.utcnow() + timedelta(days=8), config=app.config)  # fmt: skip
    db.session.commit()
    rows = db.session.scalars(select(Notification)).all()
    events = db.session.scalars(select(ConsentEvent)).all()
    assert rows and events
    assert all(row.request_id is None for row in rows + events)


def test_a_webhook_delivery_carries_the_request_id_of_the_change(
    app, client, member, policy, login_as, monkeypatch
):
    from consent_center.models import ConsentEvent
    from consent_center.notify.webhook import deliver_webhooks

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with webhook_receiver() as receiver:
        add_webhook(receiver.url, ("consent.changed",))
        db.session.commit()
        login_as(member)
        response = post(client, "/me/consents/trend_analysis", {"granted": "1"},
                        headers={"X-Request-Id": "req-toggle-000042"})  # fmt: skip
        assert response.status_code == 303
        # The ledger event is the change and carries its request; no outbox row is written.
        event = db.session.scalars(select(ConsentEvent)).one()
        assert event.request_id == "req-toggle-000042"
        assert not db.session.scalars(select(Notification)).all()
        assert deliver_webhooks() == {"sent": 1}
    [got] = receiver.received
    assert {k.lower(): v for k, v in got.headers.items()}["x-request-id"] == "req-toggle-000042"


# --- Metrics -------------------------------------------------------------------------------


def test_requests_are_counted_by_endpoint_name_and_status(app):
    client = app.test_client()
    before = scrape(app)
    assert client.get("/", buffered=True).status_code == 200
    assert client.get("/no/such/page/12345", buffered=True).status_code == 404
    after = scrape(app)
    labels = {"endpoint": "public.index", "method": "GET", "status": "200"}
    assert sample(after, "cc_http_requests_total", **labels) == (
        sample(before, "cc_http_requests_total", **labels) + 1
    )
    missing = {"endpoint": "unmatched", "method": "GET", "status": "404"}
    assert sample(after, "cc_http_requests_total", **missing) == (
        sample(before, "cc_http_requests_total", **missing) + 1
    )
    count = "cc_http_request_duration_seconds_count"
    assert sample(after, count, endpoint="public.index") == (
        sample(before, count, endpoint="public.index") + 1
    )
    assert not any("/no/such/page" in key for key in after)  # never a raw path


def test_rate_limit_refusals_are_counted(app, member):
    app.config["API_RATE_LIMIT"] = "1 per minute"
    client, token = app.test_client(), make_token()
    url = f"/api/v1/members/{member.public_id}/consents"
    before = scrape(app)
    assert client.get(url, headers=bearer(token), buffered=True).status_code == 200
    assert client.get(url, headers=bearer(token), buffered=True).status_code == 429
    after = scrape(app)
    name = "cc_rate_limit_refusals_total"
    assert sample(after, name, endpoint="api.consents") == (
        sample(before, name, endpoint="api.consents") + 1
    )


def test_outbox_depth_deliveries_and_codes_sent_are_counted(app, client, member):
    before = scrape(app)
    post(client, "/sign-in", {"identifier": member.email})
    queued = scrape(app)
    assert sample(queued, "cc_outbox_messages", channel="email", status="pending") == 1
    assert sample(queued, "cc_outbox_oldest_age_seconds", channel="email", status="pending") >= 0
    assert drain() == {"sent": 1}
    after = scrape(app)
    assert sample(after, "cc_outbox_messages", channel="email", status="pending") == 0
    sent = {"channel": "email", "kind": "sign_in_code", "outcome": "sent"}
    for name, labels in [
        ("cc_notify_deliveries_total", sent),
        ("cc_codes_sent_total", {"channel": "email"}),
        ("cc_notify_delivery_latency_seconds_count", {"channel": "email"}),
    ]:
        assert sample(after, name, **labels) == sample(before, name, **labels) + 1, name


def test_failed_deliveries_are_counted_by_channel(app, member):
    app.config["SMS_ENABLED"] = False
    from consent_center.services.notifications import enqueue_notification

    enqueue_notification(member=member, channel="sms", kind="code_lockout",
                         dedupe_key="metrics-test", recipient="+8613800138000", locale="en",
                         context={"until": member.created_at})  # fmt: skip
    db.session.commit()
    before = scrape(app)
    assert drain() == {"failed": 1}
    failed = {"channel": "sms", "kind": "code_lockout", "outcome": "failed"}
    name = "cc_notify_deliveries_total"
    assert sample(scrape(app), name, **failed) == sample(before, name, **failed) + 1


def test_consent_changes_count_when_committed_only(app, member, policy):
    name, labels = "cc_consent_changes_total", {"purpose": "trend_analysis", "granted": "yes"}
    before = sample(scrape(app), name, **labels)
    set_consent(member, "trend_analysis", True, actor=Actor.MEMBER, method=Method.FORM,
                actor_member=member)  # fmt: skip
    db.session.rollback()
    assert sample(scrape(app), name, **labels) == before
    grant(member, "trend_analysis")
    assert sample(scrape(app), name, **labels) == before + 1


def test_wrong_codes_and_lockouts_are_counted(app, client, member):
    app.config["CODE_LOCKOUT_FAILURES"] = 2
    name = "cc_code_failures_total"
    before = scrape(app)
    post(client, "/sign-in", {"identifier": member.email})
    assert post(client, "/sign-in/code", {"code": "000000"}).status_code == 422
    middle = scrape(app)
    assert sample(middle, name, outcome="wrong") == sample(before, name, outcome="wrong") + 1
    assert sample(middle, name, outcome="locked") == sample(before, name, outcome="locked")
    assert post(client, "/sign-in/code", {"code": "000001"}).status_code == 429
    after = scrape(app)
    assert sample(after, name, outcome="wrong") == sample(before, name, outcome="wrong") + 2
    assert sample(after, name, outcome="locked") == sample(before, name, outcome="locked") + 1


def test_sms_budget_used_and_left(app):
    app.config["SMS_HOURLY_BUDGET"] = 10
    before = scrape(app)
    assert (sample(before, "cc_sms_budget_used"), sample(before, "cc_sms_budget_left")) == (0, 10)
    assert spend_sms("+8613800138000") is None
    after = scrape(app)
    assert (sample(after, "cc_sms_budget_used"), sample(after, "cc_sms_budget_left")) == (1, 9)


PROCESS = textwrap.dedent(
    """
    import sys
    from consent_center.observability import prepare_multiprocess
    prepare_multiprocess(sys.argv[1])
    from consent_center import metrics
    metrics.CODES_SENT.labels("email").inc(int(sys.argv[2]))
    metrics.IN_FLIGHT.inc()
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def test_the_node_adds_up_every_process_and_forgets_ended_ones(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    processes = [
        subprocess.Popen([sys.executable, "-c", PROCESS, str(tmp_path), str(n)], cwd=ROOT,
                         env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for n in (2, 3)
    ]  # fmt: skip
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "ready"

        def values():
            found = {}
            for family in NodeCollector(str(tmp_path)).collect():
                for s in family.samples:
                    found[s.name] = found.get(s.name, 0) + s.value
            return found

        assert values()["cc_codes_sent_total"] == 5
        assert values()["cc_http_requests_in_flight"] == 2
        processes[0].stdin.close()
        processes[0].wait(10)
        assert values()["cc_codes_sent_total"] == 3  # its directory is gone with it
        assert not (tmp_path / str(processes[0].pid)).exists()
    finally:
        for process in processes:
            process.kill()
            process.wait()
            process.stdout.close()
            if not process.stdin.closed:
                process.stdin.close()


def test_gunicorn_child_exit_marks_the_worker_dead(tmp_path, monkeypatch):
    import runpy

    pid_dir = tmp_path / "1234"
    pid_dir.mkdir()
    (pid_dir / "gauge_livesum_99999.db").write_bytes(b"")
    (pid_dir / "counter_99999.db").write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(pid_dir))
    monkeypatch.setenv("METRICS_DIR", str(tmp_path))
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))

    class Worker:
        pid = 99999

    conf["child_exit"](None, Worker())
    assert sorted(p.name for p in pid_dir.iterdir()) == ["counter_99999.db"]


def test_production_refuses_to_serve_metrics_on_every_interface(app):
    from consent_center.metrics import metrics_address

    app.config["ENV_NAME"] = "production"
    for wildcard in ("0.0.0.0:9464", ":9464", "[::]:9464"):
        with pytest.raises(ValueError, match="every interface"):
            metrics_address(app, wildcard)
    assert metrics_address(app, "10.0.3.7:9464") == ("10.0.3.7", 9464)
    with pytest.raises(ValueError):
        metrics_address(app, "127.0.0.1")
    app.config["ENV_NAME"] = "development"
    assert metrics_address(app, "0.0.0.0:9464") == ("0.0.0.0", 9464)


# --- Logs ----------------------------------------------------------------------------------


@pytest.fixture
def json_logs():
    stream = io.StringIO()
    configure_logging("json")
    handler = next(h for h in logging.getLogger("consent_center").handlers
                   if getattr(h, "_consent_center", False))  # fmt: skip
    handler.setStream(stream)
    yield stream
    configure_logging("text")


def test_production_logs_one_json_object_per_line_with_the_request(app, member, json_logs):
    client = app.test_client()
    response = post(client, "/sign-in", {"identifier": member.email},
                    headers={"X-Request-Id": "req-json-logs-01"}, buffered=True)  # fmt: skip
    client.get("/readyz", buffered=True)
    drain()
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "consent_center.access"]
    sign_in = next(line for line in access if line["endpoint"] == "auth.sign_in")
    assert sign_in["request_id"] == response.headers["X-Request-Id"] == "req-json-logs-01"
    assert sign_in["method"] == "POST" and sign_in["status"] == 303
    assert sign_in["level"] == "INFO" and sign_in["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", sign_in["time"])
    assert any(line["endpoint"] == "ops.readyz" for line in access)
    everything = json_logs.getvalue()
    code = db.session.scalars(select(Notification)).one()
    assert member.email not in everything and member.email.split("@")[0] not in everything
    assert code.public_id not in everything


def test_json_lines_carry_exceptions_without_breaking_the_line():
    set_request_id(None)
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("consent_center", logging.ERROR, __file__, 1, "failed %s",
                                   ("x",), sys.exc_info())  # fmt: skip
    line = JsonFormatter().format(record)
    assert "\n" not in line
    document = json.loads(line)
    assert document["message"] == "failed x" and "ValueError: boom" in document["exception"]
    assert document["request_id"] is None


def test_production_logs_json_and_hides_statement_parameters(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    production = ProductionConfig()
    assert production.LOG_FORMAT == "json"
    assert production.SQLALCHEMY_ENGINE_OPTIONS["hide_parameters"] is True
    assert load_config("development").LOG_FORMAT == "text"


def test_the_daily_command_is_idempotent(app, runner):
    first = runner.invoke(args=["notify", "daily"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(args=["notify", "daily"])
    assert second.exit_code == 0
    assert all(line.endswith(": 0") for line in second.output.splitlines()), second.output


def test_a_worker_process_s_deliveries_reach_the_node_metrics_server(app, smtp, tmp_path):
    """Real processes: a notify worker counts into METRICS_DIR, and `flask metrics serve`
    answers Prometheus over HTTP with its counts and the outbox's depth."""
    import urllib.request

    from tests.test_worker_processes import enqueue_many, start_worker, stop, worker_env

    env = worker_env(app, smtp, METRICS_DIR=tmp_path)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    port = closed_port()
    enqueue_many(3)
    server = subprocess.Popen(
        [sys.executable, "-m", "flask", "metrics", "serve", "--bind", f"127.0.0.1:{port}"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = start_worker(env)
    sent = 'cc_notify_deliveries_total{channel="email",kind="contact_ack",outcome="sent"} 3.0'
    body = ""
    try:
        deadline = time.monotonic() + 60
        while sent not in body and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    body = r.read().decode()
            except OSError:
                continue
    finally:
        stop(worker)
        stop(server)
    assert sent in body, body[-2000:]
    assert "cc_outbox_messages" in body and 'cc_scrape_source_up{source="database"} 1.0' in body
