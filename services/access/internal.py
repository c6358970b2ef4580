"""Calls between the suite's own parts.

The edge and the services show each other one shared secret, `SPARK_INTERNAL_TOKEN`, in the
`x-spark-internal` metadata of every call they make. It is what lets a service believe what no
outside caller may tell it:

- from the edge, which client it forwards (`x-spark-client-address`, the peer Envoy accepted, and
  `X-Forwarded-For` behind trusted proxies), for the limits counted per address; the client's own
  credential is then checked as for a direct call;
- from a service calling another for its own caller (vision asking llm for a completion), whose call
  it is (`x-spark-user`): that caller was admitted, and counted, where the call entered the suite,
  and its usage, budget and identity follow it;
- from a service calling another for itself (vision reading the cleanup rule), that the call is the
  suite's own, admin methods included.

So the token is worth the admin token and every user's keys: keep it as secret as they are. From
anyone else the headers are ignored: a caller's identity comes from its own credential only. The
edge removes all three from what clients send.
"""

from __future__ import annotations

import hmac

from services.common.config import EnvReader
from services.common.identity import CLIENT_ADDRESS_HEADER, INTERNAL_HEADER, USER_METADATA

MIN_TOKEN_CHARS = 32


def read_internal_token(env: EnvReader) -> str | None:
    """`SPARK_INTERNAL_TOKEN`, refused when it is too short to be a secret; problems go to `env`."""
    token = env.optional_text("SPARK_INTERNAL_TOKEN")
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        env.problem(
            f"SPARK_INTERNAL_TOKEN must be at least {MIN_TOKEN_CHARS} characters of a random secret "
            "(e.g. `openssl rand -hex 32`)"
        )
    return token


# What clients may not send through the edge.
INTERNAL_HEADERS = (INTERNAL_HEADER, CLIENT_ADDRESS_HEADER, USER_METADATA)


class InternalToken:
    def __init__(self, token: str | None) -> None:
        self._token = token
        self._encoded = token.encode() if token else None

    def shown_in(self, given: str | None) -> bool:
        """Whether `given` (the caller's x-spark-internal) is the suite's token, compared in constant time."""
        if self._encoded is None or given is None:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._encoded)

    def on_behalf_of(self, user_id: str) -> tuple[tuple[str, str], ...]:
        """The metadata of a call a service makes to another for its own caller `user_id`."""
        return (*self.as_suite(), (USER_METADATA, user_id)) if self._token is not None else ()

    def as_suite(self) -> tuple[tuple[str, str], ...]:
        """The metadata of a call a service makes to another for itself."""
        return ((INTERNAL_HEADER, self._token),) if self._token is not None else ()
