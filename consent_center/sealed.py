"""Sealing a message's secret (a one-time code, an approval link) for the outbox.

The request that makes a code writes its message to the outbox with a masked body; the real
text travels to the worker sealed (Fernet: AES-128-CBC with an HMAC-SHA256 tag) under a key
derived from SECRET_KEY, which never enters the database. A database copy or backup alone
cannot read a code, and the worker deletes the sealed text once the message is settled.
"""

from __future__ import annotations

import base64
import json

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

__all__ = ["InvalidToken", "open_sealed", "seal"]

_INFO = b"consent-center outbox secret v1"
_fernets: dict[str, Fernet] = {}


def _fernet() -> Fernet:
    secret_key = current_app.config["SECRET_KEY"]
    fernet = _fernets.get(secret_key)
    if fernet is None:
        # A key of its own, derived from the app secret: never the session-signing key itself.
        raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            secret_key.encode()
        )
        fernet = _fernets[secret_key] = Fernet(base64.urlsafe_b64encode(raw))
    return fernet


def seal(payload: dict) -> str:
    """Encrypt and authenticate a JSON-serialisable payload; returns ASCII text."""
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return _fernet().encrypt(data).decode("ascii")


def open_sealed(token: str) -> dict:
    """The payload `seal` made.

    :raises InvalidToken: tampered text, or sealed under another SECRET_KEY.
    """
    return json.loads(_fernet().decrypt(token.encode("ascii")))
