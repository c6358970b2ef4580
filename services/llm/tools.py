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
# Both APIs' rule for function names.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_RULE = "must be 1 to 64 letters, digits, underscores or dashes"


def valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def valid_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_TOOL_ID_CHARS


def arguments_object(text: str) -> dict[str, Any]:
    """A call's arguments as the object they encode ("" is no arguments); ValueError when they are not one."""
    if not text.strip():
        return {}
    value = orjson.loads(text)
    if not isinstance(value, dict):
        raise ValueError("the arguments are not a JSON object")
    return value


def arguments_text(value: object) -> str:
    """An object of arguments as OpenAI's JSON text."""
    return orjson.dumps(value).decode()
