"""Delivering the outbox in tests the way the worker does: its own `drain` round, in the
test's app context, after the request that wrote the messages has committed."""

from __future__ import annotations

from consent_center.notify.dev import read_mailbox
from consent_center.notify.worker import drain


def deliver() -> dict[str, int]:
    """One worker round: claim and send everything due (codes and links first)."""
    return drain()


def mailbox(limit: int = 50) -> list[dict]:
    """The dev mailbox, newest first, after the worker has delivered what is due."""
    deliver()
    return read_mailbox(limit)
