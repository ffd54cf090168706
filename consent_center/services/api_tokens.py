"""API tokens: created for a company system, shown once, stored as a SHA-256, revocable.

A token is 256 random bits, so a plain SHA-256 is as good as a slow hash for it, and unlike
an HMAC keyed with SECRET_KEY it survives a rotation of that key.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, select, update

from ..clock import utcnow
from ..extensions import db
from ..models import ApiToken
from . import sql
from .audit import record_audit
from .errors import Conflict, Invalid, NotFound

CONSENTS_READ = "consents:read"
AUDIENCES_READ = "audiences:read"
EVENTS_READ = "events:read"
SCOPES = (CONSENTS_READ, AUDIENCES_READ, EVENTS_READ)
TOKEN_PREFIX = "cc_"
# last_used_at is written at most this often per token, so reads stay reads.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    """A new token: `token` exists only here, to be shown once."""

    name: str
    token: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class AuthenticatedToken:
    """The token a request presented, as plain values (what admitting it needs)."""

    id: int
    scopes: frozenset[str]
    last_used_at: datetime | None


def hash_token(token: str) -> str:
    """The stored fingerprint of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(value: str) -> tuple[str, ...]:
    """Split and check a comma-separated scope list.

    :raises Invalid: for an empty list or an unknown scope.
    """
    scopes = tuple(dict.fromkeys(s.strip() for s in value.split(",") if s.strip()))
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise Invalid(_l("Use one or more of these scopes: %(scopes)s.", scopes=", ".join(SCOPES)))
    return scopes


def create_api_token(name: str, scopes: tuple[str, ...]) -> IssuedToken:
    """Create a token for the company system `name` (no commit).

    :raises Invalid: for an empty or overlong name, or unknown scopes.
    :raises Conflict: when a token with this name exists (revoked ones keep their name).
    """
    name = name.strip()
    if not name or len(name) > 100:
        raise Invalid(_l("Give the token a name of at most 100 characters."))
    scopes = parse_scopes(",".join(scopes))
    if db.session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise Conflict(_l("A token with this name exists; choose another name."))
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.session.add(
        ApiToken(
            name=name,
            token_hash=hash_token(token),
            prefix=token[:10],
            scopes=",".join(scopes),
            created_at=utcnow(),
        )
    )
    record_audit("api_token.created", actor=None, token=name, scopes=",".join(scopes))
    db.session.flush()
    return IssuedToken(name, token, scopes)


def revoke_api_token(name: str) -> ApiToken:
    """Revoke the token called `name` at once (no commit).

    :raises NotFound: when no token has this name.
    """
    token = db.session.scalars(select(ApiToken).where(ApiToken.name == name)).first()
    if token is None:
        raise NotFound(_l("No token has this name."))
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record_audit("api_token.revoked", actor=None, token=name)
        db.session.flush()
    return token


def list_api_tokens() -> list[ApiToken]:
    """Every token, live ones first, by name."""
    return list(
        db.session.scalars(
            select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.name)
        )
    )


def is_token(token: str) -> bool:
    """Whether `token` could be one of ours at all (else there is nothing to look up)."""
    return token.startswith(TOKEN_PREFIX) and len(token) <= 100


def parse_stored_scopes(scopes: str) -> frozenset[str]:
    """A token row's scopes column as a set."""
    return frozenset(s for s in scopes.split(",") if s)


def authenticate_api_token(token: str) -> AuthenticatedToken | None:
    """The live token matching `token`, or None (unknown and revoked look the same)."""
    if not is_token(token):
        return None
    # Core, not the ORM: this runs on every API request, and plain rows are all it needs.
    row = (
        sql.connection()
        .execute(_live_token_statement(), {"token_hash": hash_token(token)})
        .first()
    )
    if row is None:
        return None
    return AuthenticatedToken(row.id, parse_stored_scopes(row.scopes), row.last_used_at)


@cache
def _live_token_statement():
    return select(ApiToken.id, ApiToken.scopes, ApiToken.last_used_at).where(
        ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None)
    )


def use_to_note(token: AuthenticatedToken, now: datetime) -> bool:
    """Whether a use of the token now is to be recorded (at most once a minute)."""
    return token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION


def note_token_use(token: AuthenticatedToken) -> bool:
    """Record that the token was used now, at most once a minute (no commit).

    :returns: whether anything was written.
    """
    now = utcnow()
    if not use_to_note(token, now):
        return False
    db.session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
    return True
