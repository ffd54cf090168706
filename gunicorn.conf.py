"""gunicorn settings for Consent Center: `gunicorn -c gunicorn.conf.py wsgi:app`.

Every value can be overridden from the environment (GUNICORN_* below) or the command line.
See docs/deploy.md for the topology this runs in.
"""

import os

# --- Binding and logs ----------------------------------------------------------------------
# Behind the load balancer: listen where it can reach, never directly on the internet.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# The app logs one line per request itself (JSON in production, with its request id):
# gunicorn's own access log would repeat it without the endpoint name or the id.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# The load balancer's X-Forwarded-* are trusted by the app (PROXY_FIX_HOPS), not here.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")

# --- Workers and threads -------------------------------------------------------------------
# (The worker class, counts and timeouts are chosen in docs/deploy.md, "Capacity per node".)

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
