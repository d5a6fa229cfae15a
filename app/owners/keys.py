"""API keys: made from 32 random bytes, shown once, stored as their SHA-256.

A key reads `dpt_<key id>_<secret>`. The key id is public (listings, logs, revocation); the secret is 256 bits
from `secrets`, so a plain SHA-256 is the right hash (as for GitHub or Stripe tokens): nothing to brute-force,
and the lookup by hash is one indexed query. bcrypt-style slow hashes are for low-entropy passwords.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

KEY_PREFIX = "dpt"
MAX_KEY_CHARS = 128


@dataclass(frozen=True)
class NewKey:
    key_id: str
    key: str  # the secret: shown once, never stored
    key_hash: str


def new_key() -> NewKey:
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(key_id=key_id, key=key, key_hash=hash_key(key))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def plausible_key(key: str) -> bool:
    """Cheap shape check before any database lookup."""
    return 0 < len(key) <= MAX_KEY_CHARS and key.startswith(f"{KEY_PREFIX}_") and key.isascii()
