"""Domain errors and the one table that maps them to gRPC status codes.

Handlers raise these; `services.common.interceptors` turns them into a
`google.rpc.Status` with details (`BadRequest`, `ErrorInfo`, `RetryInfo`) that
the edge transcodes into a JSON body. Anything else becomes INTERNAL.

Every error is bounded when it is made: messages and details often carry a
caller's input, and gRPC sends them in trailers (`grpc-message`, percent-encoded,
and `grpc-status-details-bin`, base64) that peers refuse past 8 KiB or 16 KiB
and Envoy past 60 KiB, so a 40 KB namespace turned a 400 into a 502, or into
a 429 one hop later. Messages quote input through `quoted`; `DomainError`
cuts whatever is still too long.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

ERROR_DOMAIN = "spark.services"

# How much of a caller's value `quoted` keeps.
MAX_QUOTED_CHARS = 64
# UTF-8 bytes of a message, of each detail string, and of all detail strings together. At four bytes a
# character the trailers stay under 8 KiB: a message percent-encodes to at most 3 KiB, and the status
# with every detail to at most 4.5 KiB of base64.
MAX_MESSAGE_BYTES = 1024
MAX_DETAIL_BYTES = 256
MAX_DETAILS_BYTES = 2048
ELLIPSIS = "\u2026"


def clip(text: str, max_bytes: int) -> str:
    """`text` if its UTF-8 takes at most `max_bytes`, else its longest prefix that fits with an ellipsis."""
    if len(text) * 4 <= max_bytes:
        return text
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text
    # "ignore" drops a character cut in half at the end.
    return encoded[: max_bytes - len(ELLIPSIS.encode())].decode("utf-8", "ignore") + ELLIPSIS


def quoted(value: str) -> str:
    """A caller's value for an error message: its repr, cut to a prefix with its length said if long."""
    if len(value) <= MAX_QUOTED_CHARS:
        return repr(value)
    return f"{value[:MAX_QUOTED_CHARS]!r}{ELLIPSIS} ({len(value)} characters)"


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
        self.message = clip(self.message, MAX_MESSAGE_BYTES)
        self.reason = clip(self.reason, MAX_DETAIL_BYTES)
        self.metadata, self.violations = _bounded_details(self.metadata, self.violations)
        super().__init__(self.message)


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _bounded_details(
    metadata: dict[str, str], violations: tuple[FieldViolation, ...]
) -> tuple[dict[str, str], tuple[FieldViolation, ...]]:
    """Each string clipped, and entries past MAX_DETAILS_BYTES dropped (the first violation is always kept)."""
    budget = MAX_DETAILS_BYTES

    def fits(*texts: str) -> bool:
        nonlocal budget
        budget -= sum(map(_utf8_size, texts))
        return budget >= 0

    kept_metadata: dict[str, str] = {}
    for raw_key, raw_value in metadata.items():
        key, value = clip(raw_key, MAX_DETAIL_BYTES), clip(raw_value, MAX_DETAIL_BYTES)
        if not fits(key, value):
            break
        kept_metadata[key] = value
    kept_violations: list[FieldViolation] = []
    for violation in violations:
        clipped = FieldViolation(clip(violation.field, MAX_DETAIL_BYTES), clip(violation.description, MAX_DETAIL_BYTES))
        if not fits(clipped.field, clipped.description) and kept_violations:
            break
        kept_violations.append(clipped)
    return kept_metadata, tuple(kept_violations)


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


@dataclass(frozen=True, slots=True)
class ErrorContract:
    """How one kind of domain error reaches every caller: one row, read by everything that answers."""

    # Native gRPC callers, and what the edge's transcoder turns into the HTTP status below.
    code: grpc.StatusCode
    # The HTTP status the edge answers (Envoy's mapping of `code`; tests/unit/test_errors.py holds it to that).
    http_status: int
    # OpenAI's error `type`: on the OpenAI-compatible routes and in every stream's error event.
    openai_type: str
    # Anthropic's error `type`: in the error event of a Messages API stream.
    anthropic_type: str


ERROR_CONTRACT: dict[type[DomainError], ErrorContract] = {
    InvalidArgument: ErrorContract(
        grpc.StatusCode.INVALID_ARGUMENT, 400, "invalid_request_error", "invalid_request_error"
    ),
    NotFound: ErrorContract(grpc.StatusCode.NOT_FOUND, 404, "not_found_error", "not_found_error"),
    AlreadyExists: ErrorContract(grpc.StatusCode.ALREADY_EXISTS, 409, "invalid_request_error", "invalid_request_error"),
    Aborted: ErrorContract(grpc.StatusCode.ABORTED, 409, "invalid_request_error", "invalid_request_error"),
    FailedPrecondition: ErrorContract(
        grpc.StatusCode.FAILED_PRECONDITION, 400, "invalid_request_error", "invalid_request_error"
    ),
    Unauthenticated: ErrorContract(
        grpc.StatusCode.UNAUTHENTICATED, 401, "authentication_error", "authentication_error"
    ),
    PermissionDenied: ErrorContract(grpc.StatusCode.PERMISSION_DENIED, 403, "permission_error", "permission_error"),
    ResourceExhausted: ErrorContract(grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "rate_limit_error", "rate_limit_error"),
    Unavailable: ErrorContract(grpc.StatusCode.UNAVAILABLE, 503, "server_error", "overloaded_error"),
    DeadlineExceeded: ErrorContract(grpc.StatusCode.DEADLINE_EXCEEDED, 504, "timeout", "timeout_error"),
}
# An error of no kind above: a bug, answered as INTERNAL.
UNKNOWN_CONTRACT = ErrorContract(grpc.StatusCode.UNKNOWN, 500, "server_error", "api_error")
STATUS_BY_ERROR: dict[type[DomainError], grpc.StatusCode] = {kind: row.code for kind, row in ERROR_CONTRACT.items()}


def contract_of(error: DomainError) -> ErrorContract:
    for cls in type(error).__mro__:
        row = ERROR_CONTRACT.get(cls)
        if row is not None:
            return row
    return UNKNOWN_CONTRACT


def status_code_of(error: DomainError) -> grpc.StatusCode:
    return contract_of(error).code


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
