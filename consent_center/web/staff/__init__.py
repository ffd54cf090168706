"""The staff console: one blueprint (defined in `views`, with its staff-only guard), its
routes spread over the area's modules, all imported here so registering the blueprint
registers every page."""

from . import audit, deletions, incidents, members, policies, team, views  # noqa: F401
