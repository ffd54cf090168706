"""Production server settings: `gunicorn -c gunicorn.conf.py wsgi:app` (gunicorn also reads
this file by itself from the working directory). docs/deploy.md has the topology.

Chosen by measurement on the 2-core machine with wrk, a client that keeps its connections
alive whenever the server lets it (bench/README.md, "Gunicorn settings", has the runs):
sync workers served `/me` and the toggle with the throughput of gthread workers with
keep-alive and a p99 1.7-2.7x lower, because on two cores a request here is CPU work, and a
gthread worker adds its poller, thread hand-off and the GIL shared by its threads to every
request, where a sync worker only pays a new TCP connection on the same host. Behind a
buffering proxy (the usual deployment) the proxy holds the clients' connections, which is
what sync workers assume.

Each setting can be overridden from the environment (the bench does, to compare).
"""

import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


# --- Binding and logs ----------------------------------------------------------------------
# Loopback unless told otherwise: a node listens where its load balancer reaches it
# (`GUNICORN_BIND=10.0.0.5:8000`), never on every address by accident.
bind = os.environ.get("GUNICORN_BIND") or f"127.0.0.1:{_int('PORT', 8000)}"
# The app logs one line per request itself (JSON in production, with its request id):
# gunicorn's access log would repeat it without the endpoint name or the id. Set
# GUNICORN_ACCESS_LOG=- to have one on stdout anyway.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# The load balancer's X-Forwarded-* are trusted by the app (PROXY_FIX_HOPS), not here.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")

# --- Workers and threads -------------------------------------------------------------------
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or "sync"
# 2 x cores: a fourth worker runs while others wait on PostgreSQL or Redis.
workers = _int("GUNICORN_WORKERS", 4)
# Threads per gthread worker (GUNICORN_WORKER_CLASS=gthread). Gunicorn runs a "sync" worker
# with more than one thread as a gthread worker, so sync workers get exactly one.
threads = _int("GUNICORN_THREADS", 4) if worker_class == "gthread" else 1
# Seconds a kept-alive connection may idle (gthread and async workers; sync workers close
# every connection after its response).
keepalive = _int("GUNICORN_KEEPALIVE", 5)
backlog = 2048

# --- Prometheus metrics (multiprocess) -----------------------------------------------------
# With METRICS_DIR set, each worker counts into files under METRICS_DIR/<master pid>/, and
# `flask metrics serve` (METRICS_BIND, loopback by default) adds up every process of the node.
# The directory must be chosen here, in the master, before any worker imports
# prometheus_client; workers inherit it.
from consent_center.observability import prepare_multiprocess  # noqa: E402

prepare_multiprocess()


def child_exit(server, worker):
    """A worker ended (crash, timeout, max_requests): its in-flight gauge stops counting;
    its counters stay in the sum, as Prometheus expects of a counter."""
    from consent_center.metrics import mark_process_dead

    mark_process_dead(worker.pid)
