"""API keys: made at random, stored only as salted hashes, checked in constant time.

Owns the stored form ``sha256$<salt hex>$<digest hex>`` that the config's ``api_key_hash``
holds. API keys are random 192-bit tokens (``engine keygen``), not passwords, so one salted
SHA-256 is the right cost (as for GitHub or Stripe tokens). Must never log or store a key.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets

SCHEME = "sha256"
_STORED = re.compile(r"^sha256\$([0-9a-f]{32})\$([0-9a-f]{64})$")


def new_key() -> str:
    """A fresh API key: 192 random bits, URL-safe text."""
    return secrets.token_urlsafe(24)


def hash_key(key: str, salt: bytes | None = None) -> str:
    """The stored form of ``key`` (a new random salt unless one is given)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.sha256(salt + key.encode("utf-8")).hexdigest()
    return f"{SCHEME}${salt.hex()}${digest}"


def valid_stored(stored: str) -> bool:
    return _STORED.fullmatch(stored) is not None


def verify(key: str, stored: str) -> bool:
    """Whether ``key`` hashes to ``stored``; the comparison takes the same time either way."""
    m = _STORED.fullmatch(stored)
    if m is None:
        return False
    digest = hashlib.sha256(bytes.fromhex(m[1]) + key.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(digest, bytes.fromhex(m[2]))


# Compared against when the account does not exist, so an unknown account costs what a wrong
# key does and the reply's timing does not tell which it was.
DUMMY_STORED = hash_key("no such account", b"\0" * 16)
