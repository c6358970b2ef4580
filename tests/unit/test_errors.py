"""The one table from domain errors to gRPC statuses with google.rpc details."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from services.common import errors


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
        (errors.AlreadyExists("x"), grpc.StatusCode.ALREADY_EXISTS),
        (errors.Aborted("x"), grpc.StatusCode.ABORTED),
        (errors.FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED),
        (errors.PermissionDenied("x"), grpc.StatusCode.PERMISSION_DENIED),
        (errors.ResourceExhausted("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.Unavailable("x"), grpc.StatusCode.UNAVAILABLE),
        (errors.DeadlineExceeded("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
    ],
)
def test_each_error_has_its_status(error: errors.DomainError, code: grpc.StatusCode) -> None:
    assert errors.status_code_of(error) == code
    assert errors.to_rpc_status(error).code == code.value[0]


def test_details_carry_violations_reason_and_retry_delay() -> None:
    status = errors.to_rpc_status(
        errors.ResourceExhausted(
            "slow down",
            reason="RATE_LIMITED",
            metadata={"limit": "10"},
            violations=(errors.FieldViolation("body", "too big"),),
            retry_after_s=1.5,
        )
    )
    assert status.message == "slow down"
    bad_request, info, retry = (
        error_details_pb2.BadRequest(),
        error_details_pb2.ErrorInfo(),
        error_details_pb2.RetryInfo(),
    )
    assert status.details[0].Unpack(bad_request)
    assert status.details[1].Unpack(info)
    assert status.details[2].Unpack(retry)
    assert bad_request.field_violations[0].field == "body"
    assert (info.reason, info.domain, dict(info.metadata)) == ("RATE_LIMITED", errors.ERROR_DOMAIN, {"limit": "10"})
    assert retry.retry_delay.ToMilliseconds() == 1500


def test_subclasses_inherit_their_parents_status() -> None:
    class KeyTooLong(errors.InvalidArgument):
        pass

    assert errors.status_code_of(KeyTooLong("x")) == grpc.StatusCode.INVALID_ARGUMENT


def test_internal_status_says_nothing_more() -> None:
    status = errors.internal_status()
    assert (status.code, status.message, list(status.details)) == (code_pb2.INTERNAL, "internal error", [])
