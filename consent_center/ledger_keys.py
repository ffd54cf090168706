"""The keys of the consent ledger and the audit chains, and the key that signs their heads.

They come from the environment, never from the database: whoever can write the database
cannot recompute a keyed link (HMAC-SHA256), nor sign a head (Ed25519).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from functools import cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from flask import current_app

# Links written before chains were keyed: plain SHA-256 over the same canonical content.
# Anyone can recompute them, so they are trusted only as far as an archived signed head
# covers them (`flask ledger verify --heads`), and never after a keyed link in one chain.
LEGACY_KEY_ID = "sha256-legacy"

# Where the public half of the signing key is served (docs/ledger.md).
LEDGER_PUBLIC_KEY_PATH = "/.well-known/consent-ledger-key"


class UnknownKey(LookupError):
    """A link names a key id that is neither the current key nor a listed old one."""


@cache
def _ring(key_id: str, key: str, old_keys: str) -> dict[str, bytes]:
    ring: dict[str, bytes] = {}
    for item in (old_keys or "").split(","):
        if not item.strip():
            continue
        old_id, sep, old_key = item.strip().partition(":")
        if not sep or not old_id or not old_key:
            raise RuntimeError('LEDGER_OLD_KEYS must look like "id:key,id:key".')
        ring[old_id] = old_key.encode()
    ring[key_id] = key.encode()
    if LEGACY_KEY_ID in ring:
        raise RuntimeError(f"{LEGACY_KEY_ID!r} is reserved for unkeyed links.")
    return ring


def keyring() -> dict[str, bytes]:
    """Every usable chain key by id: the current one and the old ones."""
    config = current_app.config
    return _ring(config["LEDGER_KEY_ID"], config["LEDGER_KEY"], config.get("LEDGER_OLD_KEYS"))


def current_key_id() -> str:
    """The key id new links are written under."""
    return current_app.config["LEDGER_KEY_ID"]


def link_digest(key_id: str, blob: bytes) -> str:
    """The hex digest of a link's canonical content under the key `key_id`.

    :raises UnknownKey: when no configured key has that id.
    """
    if key_id == LEGACY_KEY_ID:
        return hashlib.sha256(blob).hexdigest()
    key = keyring().get(key_id)
    if key is None:
        raise UnknownKey(key_id)
    return hmac.new(key, blob, hashlib.sha256).hexdigest()


# --- Signing the chain heads and receipts (Ed25519) ------------------------------------------


def canonical(document: dict) -> bytes:
    """The bytes a signature covers: JSON with sorted keys, no spaces, UTF-8 (docs/ledger.md
    and scripts/verify_receipt.py rebuild them the same way)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@cache
def parse_signing_key(value: str) -> Ed25519PrivateKey:
    """The Ed25519 private key from PEM or base64 of its 32 raw bytes.

    :raises ValueError, TypeError, RuntimeError: when it is neither.
    """
    text = value.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise RuntimeError("LEDGER_SIGNING_KEY must be an Ed25519 private key.")
        return key
    raw = base64.b64decode(text, validate=True)
    if len(raw) != 32:
        raise RuntimeError("LEDGER_SIGNING_KEY must be PEM or base64 of 32 bytes.")
    return Ed25519PrivateKey.from_private_bytes(raw)


def signing_key() -> Ed25519PrivateKey:
    return parse_signing_key(current_app.config["LEDGER_SIGNING_KEY"])


def public_key() -> Ed25519PublicKey:
    return signing_key().public_key()


def public_key_pem() -> str:
    """The public half, as served at /.well-known/consent-ledger-key."""
    return (
        public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def public_key_id() -> str:
    """A short fingerprint naming the signing key (SHA-256 of its raw public bytes)."""
    raw = public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(message: bytes) -> str:
    """An Ed25519 signature of `message`, base64."""
    return base64.b64encode(signing_key().sign(message)).decode()


def signature_valid(message: bytes, signature: str) -> bool:
    try:
        public_key().verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):  # binascii.Error is a ValueError
        return False
    return True
