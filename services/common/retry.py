"""Seconds as HTTP says them: Retry-After (and the rate limits' X-RateLimit-Reset)."""

from __future__ import annotations

import math


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
