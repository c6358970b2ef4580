"""The admin token check for services that serve admin routes.

Unset `ADMIN_TOKEN` closes admin routes (PERMISSION_DENIED, HTTP 403); a
missing or wrong `X-Admin-Token` is UNAUTHENTICATED (HTTP 401). The
comparison takes the same time whatever the token.
"""

from __future__ import annotations

import hmac
from typing import Any

import grpc

from services.common.errors import PermissionDenied, Unauthenticated
from services.common.transcoding import metadata_value

ADMIN_HEADER = "x-admin-token"


def require_admin(context: grpc.aio.ServicerContext[Any, Any], admin_token: str | None) -> str:
    """Returns the actor name for the history, or raises."""
    if not admin_token:
        raise PermissionDenied("admin routes are disabled: the service has no ADMIN_TOKEN", reason="ADMIN_DISABLED")
    given = metadata_value(context, ADMIN_HEADER) or ""
    if not hmac.compare_digest(given.encode(), admin_token.encode()):
        raise Unauthenticated("X-Admin-Token is missing or wrong", reason="ADMIN_TOKEN_INVALID")
    return "admin"
