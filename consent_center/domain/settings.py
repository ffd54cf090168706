"""Configuration values that member-facing texts name, and the fixed limits they state."""

from __future__ import annotations

from flask import current_app


class Setting:
    """A configuration value named in a member-facing text, read each time the text is shown
    (the text states the limit the retention rules apply, services/retention.py)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __str__(self) -> str:
        return str(current_app.config[self.key])


# Code rows are deleted this long after they expire (services/retention.py).
CODE_RETENTION_HOURS = 24
