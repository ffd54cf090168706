"""gunicorn.conf.py: the production server settings, read by `gunicorn wsgi:app`."""

from __future__ import annotations

import runpy
from pathlib import Path

from gunicorn.config import Config

CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
NAMES = ("GUNICORN_BIND", "PORT", "GUNICORN_WORKER_CLASS", "GUNICORN_WORKERS",
         "GUNICORN_THREADS", "GUNICORN_KEEPALIVE", "GUNICORN_ACCESS_LOG")  # fmt: skip


def settings(monkeypatch, **env) -> dict:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    values = runpy.run_path(str(CONF))
    config = Config()  # each value is one gunicorn accepts
    for name in ("bind", "worker_class", "workers", "threads", "keepalive", "accesslog"):
        config.set(name, values[name])
    chosen = {name: values[name] for name in ("bind", "worker_class", "workers", "threads",
                                              "keepalive", "accesslog")}  # fmt: skip
    # The worker gunicorn actually runs: a "sync" worker with threads > 1 would be gthread.
    assert config.worker_class_str == chosen["worker_class"]
    return chosen


def test_the_measured_defaults_and_no_access_log(monkeypatch):
    assert settings(monkeypatch) == {
        "bind": "127.0.0.1:8000",
        "worker_class": "sync",
        "workers": 4,
        "threads": 1,
        "keepalive": 5,
        "accesslog": None,
    }


def test_sync_workers_have_one_thread_whatever_the_environment_says(monkeypatch):
    assert settings(monkeypatch, GUNICORN_THREADS="8")["threads"] == 1


def test_the_environment_binds_and_overrides(monkeypatch):
    assert settings(monkeypatch, PORT="9000")["bind"] == "127.0.0.1:9000"
    chosen = settings(
        monkeypatch,
        GUNICORN_BIND="127.0.0.1:0",
        GUNICORN_WORKER_CLASS="gthread",
        GUNICORN_WORKERS="2",
        GUNICORN_THREADS="8",
        GUNICORN_ACCESS_LOG="-",
    )
    assert chosen == {
        "bind": "127.0.0.1:0",
        "worker_class": "gthread",
        "workers": 2,
        "threads": 8,
        "keepalive": 5,
        "accesslog": "-",
    }
