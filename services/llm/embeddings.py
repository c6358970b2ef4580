"""OpenAI's Embeddings wire format: request bodies in, embedding lists out.

Bodies are parsed strictly (an unknown field or a wrong type is an INVALID_ARGUMENT naming the field) and
bounded: at most MAX_INPUTS texts of at most MAX_INPUT_CHARS characters each. Token arrays (lists of
integers as input) are refused: which tokenizer they belong to depends on the provider.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

import orjson

from services.common.transcoding import json_object
from services.llm.violations import Violations

MAX_INPUTS = 2048
MAX_INPUT_CHARS = 32_768
MAX_DIMENSIONS = 65_536
ENCODINGS = ("float", "base64")
_KNOWN = frozenset({"model", "input", "dimensions", "encoding_format", "user"})
MAX_USER_CHARS = 256


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    model: str
    inputs: tuple[str, ...]
    dimensions: int | None
    encoding_format: str

    def payload(self, upstream_model: str) -> dict[str, Any]:
        """What the provider is sent: the caller's fields, the model its own id."""
        payload: dict[str, Any] = {"model": upstream_model, "input": list(self.inputs)}
        if self.dimensions is not None:
            payload["dimensions"] = self.dimensions
        payload["encoding_format"] = self.encoding_format
        return payload

    @property
    def chars(self) -> int:
        return sum(map(len, self.inputs))


@dataclass(frozen=True, slots=True)
class Embeddings:
    """A provider's answer: one vector per input, in input order, and the prompt tokens it counted."""

    vectors: tuple[list[float] | str, ...]
    prompt_tokens: int


def parse_embeddings_body(data: bytes) -> EmbeddingsRequest:
    body = json_object(data)
    problems = Violations()
    for key in sorted(set(body) - _KNOWN):
        problems.add(key, "is not an embeddings field this gateway accepts")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        problems.add("model", "must be a model id: `<provider>/<id>` or an OpenAI embedding model")
    inputs = _inputs(body.get("input"), problems)
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_DIMENSIONS
    ):
        problems.add("dimensions", f"must be an integer from 1 to {MAX_DIMENSIONS}")
    encoding = body.get("encoding_format", "float")
    if encoding not in ENCODINGS:
        problems.add("encoding_format", "must be float or base64")
    user = body.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > MAX_USER_CHARS):
        problems.add("user", f"must be a string of at most {MAX_USER_CHARS} characters")
    problems.raise_if_any()
    return EmbeddingsRequest(str(model), inputs, dimensions, encoding)


def _inputs(raw: object, problems: Violations) -> tuple[str, ...]:
    inputs: tuple[str, ...] = ()
    if isinstance(raw, str):
        inputs = (raw,)
    elif isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        inputs = tuple(raw)
    elif isinstance(raw, list) and raw and all(isinstance(item, (int, list)) for item in raw):
        problems.add("input", "token arrays are not supported: send the text")
    else:
        problems.add("input", "must be a string or a non-empty list of strings")
    if len(inputs) > MAX_INPUTS:
        problems.add("input", f"at most {MAX_INPUTS} texts")
    for index, text in enumerate(inputs[:MAX_INPUTS]):
        if not text:
            problems.add(f"input[{index}]", "must not be empty")
        elif len(text) > MAX_INPUT_CHARS:
            problems.add(f"input[{index}]", f"at most {MAX_INPUT_CHARS} characters")
    return inputs


def read_embeddings(data: bytes, count: int, encoding: str) -> Embeddings:
    """A provider's embeddings answer, checked: `count` vectors of finite floats (or base64 text). Raises
    ValueError, TypeError or KeyError for anything else."""
    body = orjson.loads(data)
    items = sorted(body["data"], key=lambda item: item["index"])
    if [item["index"] for item in items] != list(range(count)):
        raise ValueError("the answer does not hold one vector per input")
    vectors: list[list[float] | str] = []
    for item in items:
        vector = item["embedding"]
        if encoding == "base64":
            if not isinstance(vector, str):
                raise TypeError("a base64 embedding is not a string")
            base64.b64decode(vector, validate=True)
        elif not isinstance(vector, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in vector
        ):
            raise TypeError("an embedding is not a list of finite numbers")
        vectors.append(vector)
    tokens = body.get("usage", {}).get("prompt_tokens", 0)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise TypeError("prompt_tokens is not a non-negative integer")
    return Embeddings(tuple(vectors), tokens)


def embeddings_body(model: str, embeddings: Embeddings) -> bytes:
    """OpenAI's `list` of `embedding` objects, under the name the caller used for the model."""
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": index, "embedding": vector}
                for index, vector in enumerate(embeddings.vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": embeddings.prompt_tokens, "total_tokens": embeddings.prompt_tokens},
        }
    )
