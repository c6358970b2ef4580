"""Tool calling's rules shared by every wire format: names, limits, and the arguments' JSON text."""

from __future__ import annotations

import re
from typing import Any

import orjson

# OpenAI's limit on `tools`; Anthropic's is the same order.
MAX_TOOLS = 128
# Calls in one assistant message.
MAX_TOOL_CALLS = 128
MAX_TOOL_ID_CHARS = 256
MAX_DESCRIPTION_CHARS = 16_384
# How deeply a tool's schema, or a call's arguments, may nest. orjson writes at most 255 levels, and the
# schema validator recurses natively: deeper input is refused where it comes in, never failed on the way out.
MAX_DEPTH = 64
# Both APIs' rule for function names.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_RULE = "must be 1 to 64 letters, digits, underscores or dashes"


def valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


DESCRIPTION_RULE = f"must be a string of at most {MAX_DESCRIPTION_CHARS} characters"


def valid_description(value: object) -> bool:
    """A tool's description: absent, or text of at most MAX_DESCRIPTION_CHARS."""
    return value is None or (isinstance(value, str) and len(value) <= MAX_DESCRIPTION_CHARS)


def valid_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_TOOL_ID_CHARS


def depth(value: Any) -> int:
    """How deeply objects and arrays nest in a JSON value (counted up to just past MAX_DEPTH), without
    recursion."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                children = item.values() if isinstance(item, dict) else item
                pending.extend((child, level + 1) for child in children)
    return deepest


def too_deep(value: Any) -> bool:
    return depth(value) > MAX_DEPTH


def arguments_object(text: str) -> dict[str, Any]:
    """A call's arguments as the object they encode ("" is no arguments); ValueError when they are not one, or
    nest deeper than MAX_DEPTH."""
    if not text.strip():
        return {}
    value = orjson.loads(text)
    if not isinstance(value, dict):
        raise ValueError("the arguments are not a JSON object")
    if too_deep(value):
        raise ValueError(f"the arguments nest deeper than {MAX_DEPTH} levels")
    return value


def arguments_text(value: object) -> str:
    """An object of arguments as OpenAI's JSON text."""
    return orjson.dumps(value).decode()
