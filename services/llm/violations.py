"""Every problem of a request body, found in one pass and refused at once, each naming its field."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, NoReturn

from services.common.errors import MAX_QUOTED_CHARS, FieldViolation, InvalidArgument, quoted


class Refused(Exception):
    """One problem, raised from deep in a parser and collected by `Violations.collecting`."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


def refuse(field: str, description: str) -> NoReturn:
    raise Refused(field, description)


class Violations:
    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            # An unknown key is the caller's text, quoted short like any echoed value.
            shown = first.field if len(first.field) <= MAX_QUOTED_CHARS else quoted(first.field)
            raise InvalidArgument(f"{shown}: {first.description}", violations=tuple(self.items))

    @contextlib.contextmanager
    def collecting(self) -> Iterator[None]:
        """Records a `refuse` inside the block as a problem and leaves the block."""
        try:
            yield
        except Refused as refused:
            self.add(refused.field, refused.description)

    def number(self, body: dict[str, Any], key: str, low: float, high: float) -> float | None:
        """`body[key]` when it is a number in [low, high]; None when absent (or, recorded, when it is not)."""
        value = body.get(key)
        if value is None:
            return None
        if type(value) not in (int, float) or not low <= value <= high:
            self.add(key, f"must be a number from {low:g} to {high:g}")
            return None
        return float(value)

    def integer(self, body: dict[str, Any], key: str, low: int) -> int | None:
        """`body[key]` when it is an integer of at least `low`; None when absent (or, recorded, when it is not)."""
        value = body.get(key)
        if value is None:
            return None
        if type(value) is not int or value < low:
            self.add(key, f"must be an integer of at least {low}")
            return None
        return value
