"""The dev mailbox: messages written as JSON files under the instance folder, shown at
/dev/mailbox. Used whenever no SMTP server or Twilio account is configured."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from flask import current_app

from ..clock import utcnow
from .base import DeliveryResult, Outgoing


def mailbox_dir() -> Path:
    path = Path(
        current_app.config.get("DEV_MAILBOX_DIR") or Path(current_app.instance_path) / "dev_mailbox"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


class DevMailboxTransport:
    """Writes each message to a file; never fails."""

    def send_each(self, messages: Iterable[Outgoing]) -> Iterator[DeliveryResult]:
        folder = mailbox_dir()
        for msg in messages:
            stamp = utcnow()
            name = f"{stamp.strftime('%Y%m%dT%H%M%S%f')}-{msg.public_id}.json"
            record = {
                "id": msg.public_id,
                "channel": msg.channel,
                "kind": msg.kind,
                "to": msg.recipient,
                "subject": msg.subject,
                "text": msg.text,
                "html": msg.html,
                "headers": msg.headers,
                "at": stamp.isoformat(),
            }
            tmp = folder / (name + ".tmp")
            tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
            os.replace(tmp, folder / name)  # readers never see a half-written file
            yield DeliveryResult(ok=True, provider_id=f"dev-{msg.public_id}")


def read_mailbox(limit: int = 50) -> list[dict]:
    """The newest messages in the dev mailbox."""
    folder = mailbox_dir()
    files = sorted(folder.glob("*.json"), reverse=True)[:limit]
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]
