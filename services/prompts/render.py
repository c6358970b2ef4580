"""Fills `{{name}}` placeholders in a prompt template.

There is no escaping and no nesting: braces that do not form a placeholder
stay as they are (`{{{{` included), and substituted values are inserted
literally, so a value that contains `{{x}}` is never expanded again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from services.common.errors import FieldViolation, InvalidArgument

DEFAULT_MAX_CHARS = 100_000

PLACEHOLDER = re.compile(r"\{\{[ \t]*([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*\}\}")


def placeholders(template: str) -> list[str]:
    """The names the template uses, each once, in order of first appearance."""
    return list(dict.fromkeys(match.group(1) for match in PLACEHOLDER.finditer(template)))


def render(template: str, variables: Mapping[str, str], *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The template with every placeholder replaced by its variable; unused variables are ignored.

    Raises `InvalidArgument` with reason `MISSING_VARIABLE` (one violation per
    missing name, sorted) or `RENDERED_TOO_LONG` if the result would exceed
    `max_chars` characters.
    """
    missing = sorted({name for name in placeholders(template) if name not in variables})
    if missing:
        raise InvalidArgument(
            f"the template uses variables that were not given: {', '.join(missing)}",
            reason="MISSING_VARIABLE",
            violations=tuple(
                FieldViolation(f"variables.{name}", "is used by the template but not given") for name in missing
            ),
        )
    pieces: list[str] = []
    length = 0
    position = 0
    # Counting as we go stops a small template with huge values before it is built in full.
    for match in PLACEHOLDER.finditer(template):
        for piece in (template[position : match.start()], variables[match.group(1)]):
            length += len(piece)
            if length > max_chars:
                raise _too_long(max_chars)
            pieces.append(piece)
        position = match.end()
    tail = template[position:]
    if length + len(tail) > max_chars:
        raise _too_long(max_chars)
    pieces.append(tail)
    return "".join(pieces)


def _too_long(max_chars: int) -> InvalidArgument:
    return InvalidArgument(
        f"the rendered prompt would be longer than {max_chars} characters",
        reason="RENDERED_TOO_LONG",
        metadata={"max_chars": str(max_chars)},
    )
