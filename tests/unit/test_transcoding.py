"""Checks against the HTTP request behind a transcoded call."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.errors import InvalidArgument
from services.common.transcoding import check_path_field, metadata_value


class Metadata:
    """The one part of a servicer context these helpers read."""

    def __init__(self, **headers: str) -> None:
        self._headers = tuple((k.replace("_", "-"), v) for k, v in headers.items())

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._headers


def ctx(**headers: str) -> Any:
    return Metadata(**headers)


def test_metadata_value() -> None:
    assert metadata_value(ctx(x_spark_initial="true"), "x-spark-initial") == "true"
    assert metadata_value(ctx(), "x-spark-initial") is None


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("/_spark/kv/plain", "plain"),
        ("/_spark/kv/a%2Fb%20c%3F%23%25?collection=x", "a/b c?#%"),
        ("/_spark/kv/%C3%A9%F0%9F%98%80", "é😀"),
    ],
)
def test_a_value_from_the_path_passes(path: str, value: str) -> None:
    check_path_field(ctx(x_envoy_original_path=path), "/_spark/kv/", "key", value)


def test_a_value_from_the_query_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="part of the path"):
        check_path_field(ctx(x_envoy_original_path="/_spark/kv/a?key=b"), "/_spark/kv/", "key", "b")


def test_calls_that_were_not_transcoded_are_not_checked() -> None:
    check_path_field(ctx(), "/_spark/kv/", "key", "anything")
    check_path_field(ctx(x_envoy_original_path="/elsewhere/x"), "/_spark/kv/", "key", "anything")
