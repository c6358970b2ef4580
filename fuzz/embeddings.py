"""The OpenAI embeddings wire format (`services.llm.embeddings`): request bodies and providers' answers.

The input is a `POST /v1/embeddings` body, and also a provider's answer to one.

- `parse_embeddings_body` returns a well-typed request within its bounds or raises InvalidArgument naming
  the fields; the payload built from it parses back to the same request.
- `read_embeddings` returns one vector per input, of finite numbers (or base64 text), or raises one of the
  errors the provider maps to a ProviderError (ValueError, TypeError, KeyError); `embeddings_body` writes any
  result as JSON that parses back.
"""

from __future__ import annotations

import math

import orjson

from services.common.errors import InvalidArgument
from services.llm.embeddings import (
    ENCODINGS,
    MAX_DIMENSIONS,
    MAX_INPUT_CHARS,
    MAX_INPUTS,
    EmbeddingsRequest,
    embeddings_body,
    parse_embeddings_body,
    read_embeddings,
)


def _check(request: EmbeddingsRequest) -> None:
    assert isinstance(request.model, str) and request.model
    assert 1 <= len(request.inputs) <= MAX_INPUTS
    assert all(isinstance(text, str) and 1 <= len(text) <= MAX_INPUT_CHARS for text in request.inputs)
    assert request.dimensions is None or (type(request.dimensions) is int and 1 <= request.dimensions <= MAX_DIMENSIONS)
    assert request.encoding_format in ENCODINGS


def _answer(data: bytes, count: int, encoding: str) -> None:
    try:
        embeddings = read_embeddings(data, count, encoding)
    except (orjson.JSONDecodeError, ValueError, TypeError, KeyError, AttributeError):
        return
    assert len(embeddings.vectors) == count and embeddings.prompt_tokens >= 0
    for vector in embeddings.vectors:
        if isinstance(vector, list):
            assert all(math.isfinite(x) for x in vector)
        else:
            assert encoding == "base64" and isinstance(vector, str)
    assert orjson.loads(embeddings_body("m", embeddings))["object"] == "list"


def TestOneInput(data: bytes) -> None:
    try:
        request = parse_embeddings_body(data)
    except InvalidArgument as error:
        assert error.violations or error.reason, error
        request = None
    if request is not None:
        _check(request)
        again = parse_embeddings_body(orjson.dumps({**request.payload(request.model)}))
        assert again == request, (again, request)
    for count in (1, 2):
        for encoding in ENCODINGS:
            _answer(data, count, encoding)
