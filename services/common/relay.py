"""A peer service's gRPC error, passed on to our caller as the same domain error.

The status code, message and `google.rpc` details (reason, field violations,
retry delay) survive the hop, so a caller of vision sees the llm service's
"unknown model" as if it had asked the llm service itself. Failures that are
the peer's own (INTERNAL, UNKNOWN, ...) become UNAVAILABLE naming the peer.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from services.common.errors import STATUS_BY_ERROR, DomainError, FieldViolation, Unavailable

_ERROR_BY_STATUS = {code: error for error, code in STATUS_BY_ERROR.items()}
_DETAILS_KEY = "grpc-status-details-bin"
_TRANSPORT_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def relayed(error: grpc.aio.AioRpcError, peer: str) -> DomainError:
    cls = _ERROR_BY_STATUS.get(error.code())
    details = next((v for k, v in error.trailing_metadata() or () if k == _DETAILS_KEY and isinstance(v, bytes)), None)
    if cls is None:
        return Unavailable(f"the {peer} service failed ({error.code().name})", reason="PEER_FAILED")
    if details is None and error.code() in _TRANSPORT_CODES:
        # Our services always attach details; without them the channel itself failed, and gRPC's own
        # message names internal addresses, which callers must not see.
        if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
            return cls(f"the {peer} service did not answer in time", reason="PEER_TIMEOUT")
        return cls(f"the {peer} service is unavailable; retry shortly", reason="PEER_UNAVAILABLE")
    relayed_error = cls(error.details() or error.code().name.lower())
    if details is not None:
        _copy_details(status_pb2.Status.FromString(details), relayed_error)
    return relayed_error


def _copy_details(status: status_pb2.Status, target: DomainError) -> None:
    for detail in status.details:
        info, bad_request, retry = (
            error_details_pb2.ErrorInfo(),
            error_details_pb2.BadRequest(),
            error_details_pb2.RetryInfo(),
        )
        if detail.Unpack(info):
            target.reason, target.metadata = info.reason, dict(info.metadata)
        elif detail.Unpack(bad_request):
            target.violations = tuple(FieldViolation(v.field, v.description) for v in bad_request.field_violations)
        elif detail.Unpack(retry):
            target.retry_after_s = retry.retry_delay.ToMilliseconds() / 1000
