"""Production server settings: `gunicorn wsgi:app` reads this file from the project root.

Chosen by measurement (`bench/run.py --tune`, numbers in bench/README.md) with clients that
keep their connections alive, as downstream systems and browsers do: gthread workers keep a
connection open between requests (`keepalive`), where sync workers close every one, so each
request would pay a new TCP connection. Each setting below can be overridden from the
environment (the bench does, to compare), and `bind` comes from it: `GUNICORN_BIND`, else
`0.0.0.0:$PORT` (8000 by default). No access log by default (`GUNICORN_ACCESS_LOG=-` writes
one to stdout): the app logs what it must, without personal data.

Keep this file plain settings; server hooks (e.g. for metrics across workers) go below them.
"""

import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_int('PORT', 8000)}"
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or "gthread"
# Two cores measured: see bench/README.md, "Gunicorn settings".
workers = _int("GUNICORN_WORKERS", 4)
threads = _int("GUNICORN_THREADS", 4)
# Seconds an idle kept-alive connection stays open (behind a proxy: above its idle timeout
# towards the app would be wasted, below it makes the proxy reconnect).
keepalive = _int("GUNICORN_KEEPALIVE", 5)
backlog = 2048
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
