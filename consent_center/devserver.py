"""`make run`: serve the app for a newcomer, with a notification worker beside it."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from . import create_app
from .cli import DEMO_MEMBER_EMAIL, DEMO_STAFF_EMAIL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 5000)))
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    url = f"http://{args.host}:{args.port}"
    # The development server runs the development mode (its worker inherits this); with no
    # CONSENT_CENTER_ENV the app would be production and refuse to start without its settings.
    os.environ.setdefault("CONSENT_CENTER_ENV", "development")
    # Links in messages point here unless configured; the worker inherits it too.
    os.environ.setdefault("PUBLIC_BASE_URL", url)
    app = create_app()
    mailbox = f"{url}/dev/mailbox" if app.config.get("DEV_MAILBOX") else "(real SMTP/Twilio)"
    print(
        f"\nConsent Center is running at {url}\n"
        f"  database: {app.config['SQLALCHEMY_DATABASE_URI'].split('://')[0]}\n"
        f"  sign in as the demo member: {DEMO_MEMBER_EMAIL}\n"
        f"  sign in as demo staff:      {DEMO_STAFF_EMAIL}\n"
        f"  there are no passwords: the 6-digit code appears in the dev mailbox: {mailbox}\n",
        flush=True,
    )
    worker = None
    if "notify" in app.cli.commands:
        # Delivers every message while the site runs, sign-in codes included: on SQLite it
        # looks for a code every NOTIFY_SECRET_POLL_SECONDS, on PostgreSQL a NOTIFY wakes it.
        worker = subprocess.Popen([sys.executable, "-m", "flask", "notify", "worker"])
    try:
        app.run(host=args.host, port=args.port, debug=False, use_reloader=False)
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=10)


if __name__ == "__main__":
    main()
