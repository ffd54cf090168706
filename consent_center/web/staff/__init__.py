"""The staff console: one blueprint (defined in `views`, with its staff-only guard), its
routes spread over the area's modules, all imported here so registering the blueprint
registers every page."""

from . import (  # noqa: F401
    audit,
    birth_dates,
    deletions,
    incidents,
    members,
    policies,
    team,
    views,
)
