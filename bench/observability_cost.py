"""What the request observer (request id, metrics, access log line) costs per request,
in process: `/healthz` through the app with and without `observability.RequestObserver`,
and the observer alone around a WSGI app that does nothing.

    .venv/bin/python bench/observability_cost.py [--requests 20000] [--multiprocess]

Prints `bench observability_<name> <microseconds per request>` lines. With --multiprocess,
prometheus_client writes its memory-mapped files (METRICS_DIR), as under gunicorn.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--multiprocess", action="store_true")
    args = parser.parse_args()
    if args.multiprocess:
        os.environ["METRICS_DIR"] = tempfile.mkdtemp(prefix="cc-metrics-")
    os.environ["LOG_FORMAT"] = "json"

    from werkzeug.test import EnvironBuilder

    from consent_center import create_app
    from consent_center.observability import RequestObserver

    app = create_app("testing", SQLALCHEMY_DATABASE_URI="sqlite://", LOG_FORMAT="json")
    # The JSON line is formatted and written, to /dev/null.
    for handler in logging.getLogger("consent_center").handlers:
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
    observed = app.wsgi_app
    assert isinstance(observed, RequestObserver)
    bare = observed.wsgi_app
    environ = EnvironBuilder(path="/healthz").get_environ()

    def nothing(env, start_response):
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    def call(wsgi) -> None:
        body = wsgi(dict(environ), lambda *a: None)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close:
            close()

    cases = {
        "healthz_without": bare,
        "healthz_with": observed,
        "nothing_without": nothing,
        "nothing_with": RequestObserver(nothing, observed.begin, observed.count),
    }
    for wsgi in cases.values():
        for _ in range(1000):
            call(wsgi)
    results = {name: [] for name in cases}
    for _round in range(args.rounds):
        for name, wsgi in cases.items():
            started = time.perf_counter()
            for _ in range(args.requests):
                call(wsgi)
            results[name].append((time.perf_counter() - started) / args.requests * 1e6)
    mode = "multiprocess" if args.multiprocess else "single-process"
    for name, values in results.items():
        print(f"bench observability_{name} {statistics.median(values):.1f} us ({mode})")
    for kind in ("healthz", "nothing"):
        added = statistics.median(results[f"{kind}_with"]) - statistics.median(
            results[f"{kind}_without"]
        )
        print(f"bench observability_{kind}_added {added:.1f} us per request ({mode})")


if __name__ == "__main__":
    main()
