"""The one server interceptor: admits each call (when the service checks access), maps domain errors to
statuses and records metrics."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from grpc_status import rpc_status

from services.common.errors import (
    DomainError,
    InvalidArgument,
    Unavailable,
    internal_status,
    status_code_of,
    to_rpc_status,
)
from services.common.metrics import ServiceMetrics
from services.common.retry import retry_after
from services.common.store import StoreUnavailable

logger = logging.getLogger(__name__)

Behavior = Callable[..., Any]
Admit = Callable[[grpc.aio.ServicerContext[Any, Any]], Awaitable[None]]


class Admissions(Protocol):
    """Who may make which call (services/access/checkpoint.py)."""

    def admission(self, method: str) -> Admit | None:
        """The check to run before each call of `method`, or None to serve it unchecked."""


async def _abort(context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status) -> None:
    converted = rpc_status.to_status(status)
    await context.abort(converted.code, converted.details, converted.trailing_metadata)


class _Outcome:
    """Tracks the status code of one RPC while it runs."""

    __slots__ = ("code", "started")

    def __init__(self) -> None:
        self.code = "OK"
        self.started = time.perf_counter()


async def _on_error(
    error: BaseException, context: grpc.aio.ServicerContext[Any, Any], method: str, outcome: _Outcome
) -> None:
    """Turns an exception raised by a handler into an aborted RPC (or re-raises cancellation)."""
    if isinstance(error, StoreUnavailable):
        # The cause names hosts and ports: log it, tell the caller only what to do.
        logger.warning("store unavailable in %s: %s", method, error)
        error = Unavailable(
            "the data store is unavailable; retry shortly", reason="STORE_UNAVAILABLE", retry_after_s=1.0
        )
    if isinstance(error, DomainError):
        outcome.code = status_code_of(error).name
        if outcome.code == "INTERNAL":
            logger.error("domain error mapped to INTERNAL in %s", method, exc_info=error)
        if error.retry_after_s is not None:
            await _say_retry_after(context, error.retry_after_s)
        await _abort(context, to_rpc_status(error))
    elif isinstance(error, grpc.aio.AbortError):
        code = context.code()
        outcome.code = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
        raise error
    elif isinstance(error, asyncio.CancelledError):
        outcome.code = "CANCELLED"
        raise error
    else:
        outcome.code = "INTERNAL"
        logger.error("unhandled error in %s", method, exc_info=error)
        await _abort(context, internal_status())


async def _say_retry_after(context: grpc.aio.ServicerContext[Any, Any], seconds: float) -> None:
    """`Retry-After` for HTTP callers, whose error bodies may not carry the RetryInfo detail (OpenAI's and
    Anthropic's shapes have no place for it); a no-op when the call's headers went out already (a stream that
    had begun, or a check that said it with its own headers)."""
    with contextlib.suppress(grpc.aio.UsageError):
        await context.send_initial_metadata((("retry-after", retry_after(seconds)),))


@dataclass(frozen=True, slots=True)
class _Undecodable:
    """Stands in for a request message that did not parse, so the handler wrapper can answer INVALID_ARGUMENT.

    The transcoder copies URL text into string fields byte for byte; `%FF` in a path is not UTF-8, and
    gRPC's own reply to a failed parse is UNKNOWN (an HTTP 500) with the exception class in its message.
    """

    reason: str


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as error:
            return _Undecodable(str(error))

    return deserialize


def _check_decoded(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise InvalidArgument(f"the request is not a valid message: {request.reason}", reason="INVALID_REQUEST")


def _wrap_unary(behavior: Behavior, method: str, metrics: ServiceMetrics, admit: Admit | None) -> Behavior:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        outcome = _Outcome()
        try:
            if admit is not None:
                await admit(context)
            _check_decoded(request)
            return await behavior(request, context)
        except BaseException as error:
            await _on_error(error, context, method, outcome)
        finally:
            metrics.observe(method, outcome.code, time.perf_counter() - outcome.started)

    return wrapped


def _wrap_streaming(behavior: Behavior, method: str, metrics: ServiceMetrics, admit: Admit | None) -> Behavior:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        outcome = _Outcome()
        try:
            if admit is not None:
                await admit(context)
            _check_decoded(request)
            async for response in behavior(request, context):
                yield response
        except BaseException as error:
            await _on_error(error, context, method, outcome)
        finally:
            metrics.observe(method, outcome.code, time.perf_counter() - outcome.started)

    return wrapped


def _wrap(behavior: Behavior | None, method: str, metrics: ServiceMetrics, admit: Admit | None) -> Behavior | None:
    if behavior is None:
        return None
    if inspect.isasyncgenfunction(behavior):
        return _wrap_streaming(behavior, method, metrics, admit)
    return _wrap_unary(behavior, method, metrics, admit)


class ErrorAndMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Admits each call, applies the error table and records `grpc_server_*` metrics for every RPC."""

    def __init__(self, metrics: ServiceMetrics, admissions: Admissions | None = None) -> None:
        self._metrics = metrics
        self._admissions = admissions
        # Handlers are fixed per method once registered: wrap each once, not on every call.
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        admit = self._admissions.admission(method) if self._admissions is not None else None
        wrapped = handler._replace(  # type: ignore[attr-defined]
            request_deserializer=(
                handler.request_deserializer if handler.request_streaming else _tolerant(handler.request_deserializer)
            ),
            unary_unary=_wrap(handler.unary_unary, method, self._metrics, admit),
            unary_stream=_wrap(handler.unary_stream, method, self._metrics, admit),
            stream_unary=_wrap(handler.stream_unary, method, self._metrics, admit),
            stream_stream=_wrap(handler.stream_stream, method, self._metrics, admit),
        )
        self._wrapped[method] = wrapped
        return wrapped  # type: ignore[no-any-return]
