"""The one table from domain errors to gRPC statuses with google.rpc details."""

from __future__ import annotations

import base64
from urllib.parse import quote

import grpc
import orjson
import pytest
from google.rpc import code_pb2, error_details_pb2

from services.common import errors, sse


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


HUGE = "\U0001f600" * 50_000  # four bytes of UTF-8 a character: the worst case for every byte limit


def test_a_caller_value_in_a_message_is_quoted_as_a_short_prefix_with_its_length() -> None:
    assert errors.quoted("gpt-9") == "'gpt-9'"
    long = errors.quoted("a" * 40_000)
    assert long == repr("a" * errors.MAX_QUOTED_CHARS) + "\u2026 (40000 characters)"


def test_clip_keeps_short_text_and_cuts_long_text_at_a_character_boundary() -> None:
    assert errors.clip("short", 10) == "short"
    assert errors.clip("a" * 11, 10) == "a" * 7 + "\u2026"
    assert errors.clip("\u00e9" * 10, 10) == "\u00e9" * 3 + "\u2026"  # two bytes each: no half character


def test_every_string_of_an_error_is_bounded_and_the_details_in_total() -> None:
    error = errors.InvalidArgument(
        HUGE,
        reason=HUGE,
        metadata={HUGE: HUGE, "id": HUGE},
        violations=tuple(errors.FieldViolation(f"{i}{HUGE}", HUGE) for i in range(1_000)),
    )
    assert len(error.message.encode()) <= errors.MAX_MESSAGE_BYTES
    assert error.message.startswith("\U0001f600") and error.message.endswith("\u2026")
    assert str(error) == error.message
    strings = [error.reason, *error.metadata, *error.metadata.values()]
    strings += [s for v in error.violations for s in (v.field, v.description)]
    assert all(len(s.encode()) <= errors.MAX_DETAIL_BYTES for s in strings)
    assert sum(len(s.encode()) for s in strings[1:]) <= errors.MAX_DETAILS_BYTES
    assert error.violations and error.violations[0].field.startswith("0")


def test_one_long_violation_is_kept_even_past_the_budget() -> None:
    error = errors.InvalidArgument(
        "x", metadata={f"k{i}": "v" * 200 for i in range(20)}, violations=(errors.FieldViolation(HUGE, HUGE),)
    )
    assert len(error.violations) == 1


def test_the_trailers_of_any_error_fit_in_grpc_default_metadata_limit() -> None:
    """gRPC clients refuse trailers over 8 KiB some of the time (16 KiB always): a vision call to prompts
    answered with a 200 KB field name became RESOURCE_EXHAUSTED, an HTTP 429."""
    error = errors.InvalidArgument(
        HUGE,
        reason="R",
        metadata={f"{i}{HUGE}": HUGE for i in range(100)},
        violations=tuple(errors.FieldViolation(f"{i}{HUGE}", HUGE) for i in range(100)),
    )
    status = errors.to_rpc_status(error)
    # grpc-message is percent-encoded byte by byte; grpc-status-details-bin is the whole status in base64.
    message_bytes = len(quote(status.message.encode(), safe=""))
    details_bytes = len(base64.b64encode(status.SerializeToString()))
    assert message_bytes + details_bytes < 8 * 1024


# Envoy's gRPC-to-HTTP mapping (Grpc::Utility::grpcToHttpStatus), which the transcoder applies.
ENVOY_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNKNOWN: 500,
}


def test_each_kind_of_error_is_one_row_whose_http_status_is_the_edges() -> None:
    for kind, row in errors.ERROR_CONTRACT.items():
        assert row.http_status == ENVOY_HTTP_STATUS[row.code], kind
        assert errors.contract_of(kind("x")) is row
    assert errors.contract_of(errors.DomainError("x")) is errors.UNKNOWN_CONTRACT


@pytest.mark.parametrize(
    ("error", "expected_type"),
    [
        (errors.ResourceExhausted("over budget", reason="BUDGET_EXCEEDED"), "rate_limit_error"),
        (errors.Unavailable("provider down", reason="PROVIDER_UNAVAILABLE"), "server_error"),
        (errors.DeadlineExceeded("too slow"), "timeout"),
    ],
)
def test_every_stream_ends_a_failure_with_one_error_event(error: errors.DomainError, expected_type: str) -> None:
    frame = sse.error_event(error)
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    assert orjson.loads(frame[6:]) == {
        "error": {
            "message": error.message,
            "type": expected_type,
            "code": errors.status_code_of(error).name.lower(),
            "reason": error.reason,
        }
    }
