"""The data inventory, read from the model columns' `info` (domain/inventory.py `held`):
every table and column holding member data, with what the member is told about it."""

from __future__ import annotations

from ..domain.inventory import InventoryGroup, build_inventory
from ..extensions import db

# Every model, so the metadata is complete whichever module is imported first.
from . import (  # noqa: F401
    api,
    audit,
    auth,
    consent,
    deletion,
    guardian,
    incident,
    member,
    notification,
    policy,
    webhook,
)

DATA_INVENTORY: tuple[InventoryGroup, ...] = build_inventory(db.metadata)
# The inventory's tables by name.
HELD_TABLES: dict[str, InventoryGroup] = {group.table: group for group in DATA_INVENTORY}
