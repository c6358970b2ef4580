"""Channels from one service to another: traced, quick to reconnect after a peer restarts."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from opentelemetry.sdk.trace import TracerProvider

from services.common.telemetry import client_interceptors

# gRPC's default reconnect backoff grows to minutes; a restarted peer on the same
# machine or network is back within a second, so probe it often.
RECONNECT_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 5_000),
)


def open_channel(
    address: str, provider: TracerProvider | None = None, *, extra_options: Sequence[tuple[str, int | str]] = ()
) -> grpc.aio.Channel:
    """An insecure channel to a peer service; traced when a provider is given."""
    interceptors = client_interceptors(provider) if provider is not None else None
    return grpc.aio.insecure_channel(address, options=[*RECONNECT_OPTIONS, *extra_options], interceptors=interceptors)
