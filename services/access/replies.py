"""Seconds as rate-limit headers say them: Retry-After and X-RateLimit-Reset."""

from __future__ import annotations

import math


def whole_seconds(seconds: float) -> int:
    """Seconds rounded up, at least 1."""
    return max(1, math.ceil(seconds))


def retry_after(seconds: float) -> str:
    """A Retry-After value."""
    return str(whole_seconds(seconds))
