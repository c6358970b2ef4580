"""Providers' stop reasons in OpenAI's vocabulary."""

from __future__ import annotations

from services.llm.chat import FinishReason

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    # Anthropic's stop reasons.
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    # BigModel's.
    "sensitive": "content_filter",
}


def finish_reason(raw: object) -> FinishReason:
    """OpenAI's finish reason for any provider's; an unknown or missing one reads as "stop"."""
    return _FINISH_REASONS.get(raw, "stop") if isinstance(raw, str) else "stop"
