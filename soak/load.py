"""Run the soak's Locust users headless for a while: `python -m soak.load`.

    python -m soak.load --seconds 480 --users 30 --spawn-rate 3 --out requests.jsonl

Writes one JSON line per request (start time, kind, status, milliseconds, instance, error)
to --out, so the harness can match each failure to the faults by its time. Locust runs in a
process of its own because it monkey-patches the standard library with gevent (on import).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

import gevent
import locust
from locust.env import Environment

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from soak import locustfile  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--spawn-rate", type=float, default=3.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    out = args.out.open("w", buffering=1)

    def record(
        request_type,
        name,
        response_time,
        response_length,
        response=None,
        context=None,
        exception=None,
        start_time=None,
        url=None,
        **_kw,
    ) -> None:
        status = getattr(response, "status_code", None) if response is not None else None
        out.write(
            json.dumps(
                {
                    "t": start_time,
                    "type": request_type,
                    "name": name,
                    "ms": response_time,
                    "status": status,
                    "instance": urlsplit(url).port if url and "://" in url else None,
                    "error": repr(exception)[:200] if exception else None,
                    "context": context or None,
                }
            )
            + "\n"
        )

    users = [
        locustfile.Member,
        locustfile.TextingMember,
        locustfile.Visitor,
        locustfile.ApiReader,
        locustfile.Staff,
    ]
    env = Environment(user_classes=users, events=locust.events)
    env.events.request.add_listener(record)
    runner = env.create_local_runner()
    runner.start(args.users, spawn_rate=args.spawn_rate)
    gevent.spawn_later(args.seconds, runner.quit)
    runner.greenlet.join()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
