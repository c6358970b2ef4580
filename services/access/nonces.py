"""Nonces: a request carrying `X-Nonce` is accepted once per caller within the nonce lifetime."""

from __future__ import annotations

import re

from services.common.errors import AlreadyExists, InvalidArgument
from services.common.store import Check, Set, Store

SPACE = "access-nonces"
NONCE = re.compile(r"[A-Za-z0-9._~:+/=-]{8,128}")


class NonceBook:
    def __init__(self, store: Store, *, ttl_s: int) -> None:
        self._store = store
        self._ttl_ms = ttl_s * 1000

    async def accept(self, subject: str, nonce: str) -> None:
        """Records the nonce for the subject, or raises: malformed (400) or already seen (409)."""
        if not NONCE.fullmatch(nonce):
            raise InvalidArgument(
                "X-Nonce must be 8-128 characters: letters, digits and . _ ~ : + / = -", reason="NONCE_INVALID"
            )
        key = f"{subject}|{nonce}"
        # Set-if-absent: of two requests racing with one nonce, on any number of instances, one wins.
        result = await self._store.commit([Check(SPACE, key, None)], [Set(SPACE, key, b"", self._ttl_ms)])
        if not result.ok:
            raise AlreadyExists("this X-Nonce was already used: a replayed request is refused", reason="NONCE_REPLAYED")
