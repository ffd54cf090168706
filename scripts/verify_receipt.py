#!/usr/bin/env python3
"""Check a Consent Center consent receipt, or a signed chain-heads statement, offline.

Needs only Python 3.11+ and the `cryptography` package (pip install cryptography).

    python verify_receipt.py consent-receipt-<id>.json --key consent-ledger-key.pem
    python verify_receipt.py heads-2026-12-05.json --key consent-ledger-key.pem

The key is the site's public key, fetched once from /.well-known/consent-ledger-key and kept.
Without --key, a receipt is checked against the key it carries ("publicKey"), which proves
only that it was not changed after signing, not who signed it. Exit status 0 when the
signature is valid, 1 when it is not. See docs/ledger.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

HEADS_FORMAT = "consent-center-chain-heads/1"


def canonical(document: dict) -> bytes:
    """JSON with sorted keys, no spaces, UTF-8: the bytes the site signed."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_key(pem: str) -> Ed25519PublicKey:
    key = load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise SystemExit("not an Ed25519 public key")
    return key


def valid(key: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def check_receipt(document: dict, key: Ed25519PublicKey | None) -> bool:
    signed = dict(document)
    signature = signed.pop("x-signature", None)
    if not isinstance(signature, str):
        print("no signature in this receipt (x-signature)")
        return False
    key = key or load_key(document["publicKey"])
    ok = valid(key, canonical(signed), signature)
    print(f"receipt {document.get('consentReceiptID')}: signature {'valid' if ok else 'INVALID'}")
    if ok:
        print(f"  member {document.get('piiPrincipalId')}, event {document.get('x-sequence')}"
              f" of their ledger, granted={document.get('x-granted')}")
        print(f"  hash {document.get('x-hash')} (key {document.get('x-keyId')})")
        print(f"  previous hash {document.get('x-previousHash')}")
    return ok


def check_heads(document: dict, key: Ed25519PublicKey) -> bool:
    statement = {k: document.get(k) for k in ("format", "created_at", "public_key_id", "digest")}
    lists = {"ledger": document.get("ledger"), "audit": document.get("audit")}
    ok = statement["format"] == HEADS_FORMAT and valid(
        key, canonical(statement), document.get("signature") or ""
    )
    ok = ok and hashlib.sha256(canonical(lists)).hexdigest() == statement["digest"]
    print(f"heads of {statement['created_at']}: {'valid' if ok else 'INVALID'}"
          f" ({len(lists['ledger'] or [])} ledger chains, {len(lists['audit'] or [])} audit)")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", help="a receipt (.json) or a heads statement (.json)")
    parser.add_argument("--key", help="the site's public key (PEM file)")
    args = parser.parse_args(argv)
    with open(args.file, encoding="utf-8") as f:
        document = json.load(f)
    key = None
    if args.key:
        with open(args.key, encoding="utf-8") as f:
            key = load_key(f.read())
    if document.get("format") == HEADS_FORMAT:
        if key is None:
            parser.error("a heads statement needs --key")
        return 0 if check_heads(document, key) else 1
    return 0 if check_receipt(document, key) else 1


if __name__ == "__main__":
    sys.exit(main())
