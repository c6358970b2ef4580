"""The embeddings wire format: what a provider's answer must be to reach a caller."""

from __future__ import annotations

import orjson
import pytest

from services.common.errors import InvalidArgument
from services.llm.embeddings import embeddings_body, parse_embeddings_body, read_embeddings


def answer(*vectors: object, tokens: object = 3, order: tuple[int, ...] | None = None) -> bytes:
    indexes = order if order is not None else tuple(range(len(vectors)))
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in zip(indexes, vectors, strict=True)]
    return orjson.dumps({"object": "list", "data": data, "model": "m", "usage": {"prompt_tokens": tokens}})


def test_vectors_come_back_in_input_order_under_the_callers_model_name() -> None:
    read = read_embeddings(answer([3.0], [1.0, 2.0], order=(1, 0)), 2, "float")
    assert read.vectors == ([1.0, 2.0], [3.0]) and read.prompt_tokens == 3
    body = orjson.loads(embeddings_body("openai/text-embedding-3-small", read))
    assert body["model"] == "openai/text-embedding-3-small" and body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert [item["index"] for item in body["data"]] == [0, 1]


@pytest.mark.parametrize(
    ("data", "count", "encoding"),
    [
        (answer([1.0]), 2, "float"),  # a vector missing
        (answer([1.0], [2.0], order=(0, 0)), 2, "float"),  # an index twice
        (answer(["nan"]), 1, "float"),  # not numbers
        (answer([1.0, True]), 1, "float"),
        (answer("AAAA"), 1, "float"),  # base64 where floats were asked for
        (answer([1.0]), 1, "base64"),
        (answer("not base64!"), 1, "base64"),
        (answer([1.0], tokens=-1), 1, "float"),
        (b'{"data": "x"}', 1, "float"),
    ],
)
def test_a_malformed_answer_is_refused(data: bytes, count: int, encoding: str) -> None:
    with pytest.raises((ValueError, TypeError, KeyError)):
        read_embeddings(data, count, encoding)


def test_every_problem_of_a_request_is_named() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_embeddings_body(b'{"input": [], "dimensions": true, "encoding_format": 1, "user": 5}')
    fields = [violation.field for violation in caught.value.violations]
    assert fields == ["model", "input", "dimensions", "encoding_format", "user"]
