"""Who is calling: the identity the call was admitted with (services/access/checkpoint.py)."""

from __future__ import annotations

from contextvars import ContextVar

# A service calling another for its caller names that caller here, next to the suite's internal token
# (services/access/internal.py); from anyone else it is ignored, and the edge removes a client's.
USER_METADATA = "x-spark-user"
# The suite's own token, and the client address the edge forwards for (services/access/internal.py).
INTERNAL_HEADER = "x-spark-internal"
CLIENT_ADDRESS_HEADER = "x-spark-client-address"
ANONYMOUS = "anonymous"
# A user id as another service names it is cut to this (user ids are at most 64 characters).
MAX_CALLER_CHARS = 128

# Set by the checkpoint in the task that serves the call, before its handler runs.
CALLER: ContextVar[str] = ContextVar("spark_caller", default=ANONYMOUS)


def current_caller() -> str:
    """The calling user's id, or "anonymous" for a call admitted without an identity (or not checked)."""
    return CALLER.get()
