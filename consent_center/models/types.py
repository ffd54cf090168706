"""Column types shared by the models."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import DateTime, String
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime on every backend (SQLite returns naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime written to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def key_string(length: int):
    """A string only ever compared for equality (an id, a key): the bytewise "C" collation
    on PostgreSQL, so maintaining its index needs no locale-aware comparisons (the database
    default, C.UTF-8, is not treated as "C"). SQLite compares bytes already."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def new_public_id() -> str:
    """A random, URL-safe identifier (128 bits) for use in URLs instead of row keys."""
    return secrets.token_urlsafe(16)
