"""Where the admin token has been used successfully, so that a lockout for failures cannot be used as an
oracle and still does not shut the operator out.

While an address is locked out for failed keys and tokens, a right admin token from it is served only if
that address has used the token before (an operator behind the NAT or proxy a guesser shares). From an
address that never used it (the guesser itself), a right guess gets the same 429 as a wrong one, so the
lockout still bounds guessing. API keys need none of this: 256 random bits cannot be guessed.
"""

from __future__ import annotations

import hashlib

from services.common.store import Store, set_value

SPACE = "access-admin-proofs"
# How long an address stays known for the token after it was first seen using it.
PROOF_TTL_MS = 30 * 24 * 3600 * 1000
# Addresses remembered in memory before the set starts over (each costs one store write when first seen).
MAX_REMEMBERED = 10_000


class AdminProofs:
    def __init__(self, store: Store, admin_token: str | None) -> None:
        self._store = store
        # A new token starts with no proofs: the old token's users must show the new one first.
        self._fingerprint = hashlib.sha256((admin_token or "").encode()).hexdigest()[:16]
        self._remembered: set[str] = set()

    def _key(self, address: str) -> str:
        return f"{self._fingerprint}|{address}"

    async def used_from(self, address: str) -> bool:
        """True when the admin token was served to `address` before (in any access process); an address
        this process knows costs no store read."""
        key = self._key(address)
        if key in self._remembered:
            return True
        if await self._store.get(SPACE, key) is None:
            return False
        self._hold(key)
        return True

    async def remember(self, address: str) -> None:
        """Records that the right token came from `address` (one store write)."""
        key = self._key(address)
        await set_value(self._store, SPACE, key, b"", ttl_ms=PROOF_TTL_MS)
        self._hold(key)

    def _hold(self, key: str) -> None:
        if len(self._remembered) >= MAX_REMEMBERED:
            self._remembered.clear()
        self._remembered.add(key)
