"""How the call being served was admitted: its user, the credential that said so, and the client's address.

The checkpoint (services/access/checkpoint.py) sets it in the task that serves the call, before the
handler runs; `services.common.identity.current_caller()` stays the plain user id every service logs.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from services.access.users import User

# key: an API key; session: a sign-in cookie; development: the development owner; admin: the admin token
# alone; anonymous: no credential (a public method, or a public app's visitor); internal: another of the
# suite's services; unchecked: checks are off (or the call was not admitted by a checkpoint).
Credential = Literal["key", "session", "development", "admin", "anonymous", "internal", "unchecked"]


@dataclass(frozen=True, slots=True)
class Admitted:
    user: User | None
    credential: Credential
    # The client's address as the per-address limits count it.
    address: str


UNCHECKED = Admitted(None, "unchecked", "unknown")
ADMITTED: ContextVar[Admitted] = ContextVar("spark_admitted", default=UNCHECKED)


def admitted() -> Admitted:
    return ADMITTED.get()
