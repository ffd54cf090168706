"""Production server settings: `gunicorn wsgi:app` reads this file from the project root.

Chosen by measurement on the 2-core machine with wrk, a client that keeps its connections
alive whenever the server lets it (bench/README.md, "Gunicorn settings", has the runs):
sync workers served hello world, `/me` and the toggle faster than gthread workers with
keep-alive, because on two cores a request here is CPU work, and a gthread worker adds its
poller, thread hand-off and the GIL shared by its threads to every request, where a sync
worker only pays a new TCP connection on the same host. Behind a buffering proxy (the usual
deployment) the proxy holds the clients' connections, which is what sync workers assume.

Each setting can be overridden from the environment (the bench does, to compare), and
`bind` comes from it: `GUNICORN_BIND`, else `0.0.0.0:$PORT` (8000 by default). No access
log by default (`GUNICORN_ACCESS_LOG=-` writes one to stdout): the app logs what it must,
without personal data.

Keep this file plain settings; server hooks (e.g. for metrics across workers) go below them.
"""

import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_int('PORT', 8000)}"
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or "sync"
# 2 x cores: a fourth worker runs while others wait on PostgreSQL or Redis.
workers = _int("GUNICORN_WORKERS", 4)
# Used by gthread workers only (GUNICORN_WORKER_CLASS=gthread).
threads = _int("GUNICORN_THREADS", 4)
# Seconds a kept-alive connection may idle (gthread and async workers; sync workers close
# every connection after its response).
keepalive = _int("GUNICORN_KEEPALIVE", 5)
backlog = 2048
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
