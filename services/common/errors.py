"""Domain errors and the one table that maps them to gRPC status codes.

Handlers raise these; `services.common.interceptors` turns them into a
`google.rpc.Status` with details (`BadRequest`, `ErrorInfo`, `RetryInfo`) that
the edge transcodes into a JSON body. Anything else becomes INTERNAL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

ERROR_DOMAIN = "spark.services"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field of a request and why it is invalid."""

    field: str
    description: str


@dataclass
class DomainError(Exception):
    """Base of every error a handler may raise on purpose."""

    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    violations: tuple[FieldViolation, ...] = ()
    retry_after_s: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)


class InvalidArgument(DomainError):
    """The request is malformed; `violations` names the fields."""


class NotFound(DomainError):
    """The addressed resource does not exist."""


class AlreadyExists(DomainError):
    """A resource with the same identity exists."""


class Aborted(DomainError):
    """A concurrency check failed (e.g. a versionstamp mismatch); retry after re-reading."""


class FailedPrecondition(DomainError):
    """The system is not in a state the request needs."""


class Unauthenticated(DomainError):
    """The caller did not prove who it is."""


class PermissionDenied(DomainError):
    """The caller may not do this."""


class ResourceExhausted(DomainError):
    """A quota or limit was hit; `retry_after_s` says when to try again."""


class Unavailable(DomainError):
    """A dependency is down; the request may be retried."""


class DeadlineExceeded(DomainError):
    """The work did not finish in time."""


STATUS_BY_ERROR: dict[type[DomainError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    Aborted: grpc.StatusCode.ABORTED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_code_of(error: DomainError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        code = STATUS_BY_ERROR.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.UNKNOWN


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_rpc_status(error: DomainError) -> status_pb2.Status:
    """Builds the `google.rpc.Status` with details for one domain error."""
    code = status_code_of(error)
    details = []
    if error.violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                        for v in error.violations
                    ]
                )
            )
        )
    if error.reason:
        details.append(
            _pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata))
        )
    if error.retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(error.retry_after_s * 1000))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_pb2.Status(code=code.value[0], message=error.message, details=details)


def internal_status() -> status_pb2.Status:
    """The only thing a caller learns about an unexpected failure."""
    return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
