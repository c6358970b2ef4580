"""Input guarding: size limits, control characters and prompt-injection patterns.

Runs on every request before routing, so a request that would be refused
costs no provider call.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Literal

from services.common.errors import FieldViolation, InvalidArgument
from services.llm.chat import ChatMessage, ChatRequest, Part, TextPart

InjectionMode = Literal["off", "flag", "refuse"]

# C0 controls except tab, newline and carriage return; DEL; C1 controls; and the bidi overrides that hide text.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# Phrasings of the common prompt-injection families; each name is what gets reported.
INJECTION_PATTERNS: dict[str, re.Pattern[str]] = {
    "ignore_instructions": re.compile(
        r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|preceding|all|system)\b"
        r".{0,40}\b(instructions?|prompts?|rules|directions|guidelines)\b",
        re.IGNORECASE | re.DOTALL,
    ),
    "reveal_system_prompt": re.compile(
        r"\b(reveal|print|show|repeat|output|leak|tell me)\b.{0,40}\b(system|hidden|initial|original)\s+"
        r"(prompt|instructions?|message)\b",
        re.IGNORECASE | re.DOTALL,
    ),
    "role_override": re.compile(
        r"\byou are (now|no longer)\b.{0,60}\b(DAN|jailbroken|unrestricted|unfiltered|developer mode)\b"
        r"|\b(enable|enter|activate)\s+(developer|god|jailbreak|DAN)\s+mode\b",
        re.IGNORECASE | re.DOTALL,
    ),
    "chat_template_tokens": re.compile(r"<\|(im_start|im_end|system|endoftext)\|>|\[/?INST\]|<</?SYS>>"),
}


@dataclass(frozen=True, slots=True)
class GuardLimits:
    max_messages: int
    max_message_chars: int
    max_tokens: int
    injection: InjectionMode


@dataclass(frozen=True, slots=True)
class Guarded:
    request: ChatRequest
    # Names of the injection patterns found (empty when none, or when detection is off).
    injections: tuple[str, ...]


def _clean(message: ChatMessage) -> ChatMessage:
    if isinstance(message.content, str):
        return dataclasses.replace(message, content=_CONTROL.sub("", message.content))
    parts: tuple[Part, ...] = tuple(
        TextPart(_CONTROL.sub("", part.text)) if isinstance(part, TextPart) else part for part in message.content
    )
    return dataclasses.replace(message, content=parts)


def guard(request: ChatRequest, limits: GuardLimits) -> Guarded:
    """Strips control characters, enforces the limits (raising InvalidArgument) and detects injections."""
    if len(request.messages) > limits.max_messages:
        raise InvalidArgument(
            f"messages: at most {limits.max_messages} messages are accepted, got {len(request.messages)}",
            reason="TOO_MANY_MESSAGES",
            violations=(FieldViolation("messages", f"at most {limits.max_messages} messages"),),
        )
    messages = tuple(_clean(m) for m in request.messages)
    for index, message in enumerate(messages):
        size = len(message.text)
        if size > limits.max_message_chars:
            field = f"messages[{index}].content"
            raise InvalidArgument(
                f"{field}: at most {limits.max_message_chars} characters per message, got {size}",
                reason="MESSAGE_TOO_LONG",
                violations=(FieldViolation(field, f"at most {limits.max_message_chars} characters"),),
            )
    if request.max_tokens is not None and request.max_tokens > limits.max_tokens:
        raise InvalidArgument(
            f"max_tokens: at most {limits.max_tokens}, got {request.max_tokens}",
            reason="MAX_TOKENS_TOO_LARGE",
            violations=(FieldViolation("max_tokens", f"at most {limits.max_tokens}"),),
        )
    injections: tuple[str, ...] = ()
    if limits.injection != "off":
        # Only what callers wrote: an assistant turn quoting an attack is not one.
        text = "\n".join(m.text for m in messages if m.role != "assistant")
        injections = tuple(name for name, pattern in INJECTION_PATTERNS.items() if pattern.search(text))
    return Guarded(dataclasses.replace(request, messages=messages), injections)


def injection_refusal(patterns: tuple[str, ...]) -> InvalidArgument:
    """The error for a request refused in "refuse" mode."""
    return InvalidArgument(
        "the prompt looks like a prompt-injection attempt and was refused",
        reason="PROMPT_INJECTION",
        metadata={"patterns": ",".join(patterns)},
    )
