"""Structured output: a JSON answer checked before it reaches the caller.

JSON mode promises an object; a `json_schema` response format promises an answer valid against the
caller's schema. Providers mostly keep that promise (OpenAI's strict mode, Anthropic's forced tool), but a
model that breaks it is an explicit error, never a silently bad answer. Schemas are compiled offline: a
`$ref` to another document is refused, never fetched.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema_rs
import orjson

from services.llm import tools
from services.llm.chat import ChatRequest, FinishReason

# The schema that JSON mode (`json_object`) stands for: any object.
OPEN_OBJECT: dict[str, Any] = {"type": "object"}
_SHOWN_ERROR_CHARS = 300
# Deeper schemas are refused before compiling: the validator recurses natively, and a stack overflow there
# would end the process rather than the request.
MAX_SCHEMA_DEPTH = tools.MAX_DEPTH


@functools.lru_cache(maxsize=256)
def _compiled(schema_json: bytes) -> Any:
    return jsonschema_rs.validator_for(orjson.loads(schema_json), offline=True)


def compile_schema(schema: dict[str, Any]) -> Any:
    """The schema's validator; ValueError, in words for the caller, when it is no JSON Schema."""
    if tools.too_deep(schema):
        raise ValueError(f"is nested deeper than {MAX_SCHEMA_DEPTH} levels")
    try:
        return _compiled(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as error:
        raise ValueError(f"is not a valid JSON Schema: {_first_line(str(error))}") from None


def answer_problem(request: ChatRequest, text: str, finish_reason: FinishReason) -> str | None:
    """What is wrong with a JSON-mode answer, or None when it keeps the promise (or asked for none).

    An answer cut short by max_tokens or a content filter is passed on as it is: its finish reason says why.
    """
    if not request.json_mode or finish_reason in ("length", "content_filter"):
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "the model's answer is not JSON"
    if request.json_schema is None:
        return None if isinstance(value, dict) else "the model's answer is not a JSON object"
    error = next(iter(compile_schema(request.json_schema.schema).iter_errors(value)), None)
    if error is None:
        return None
    where = "/".join(str(step) for step in error.instance_path) or "the top level"
    return f"the model's answer does not match the schema at {where}: {_first_line(error.message)}"


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0][:_SHOWN_ERROR_CHARS]
