"""The prompt registry's caller input: template rendering (`services.prompts.render`) and restored exports
(`services.prompts.backups.parse_export`).

The input, as text split at NULs, is a template followed by `name=value` variables; as bytes it is also a
`POST /v1/prompts:restore` body.

- `render` gives what replacing each placeholder with its variable gives, never expanding a value again,
  or raises InvalidArgument MISSING_VARIABLE naming the missing names in order (as many as the error's
  bounded details hold, each clipped like every detail), or RENDERED_TOO_LONG
  exactly when the result would be over the limit.
- `parse_export` returns valid prompts or raises InvalidArgument; an export of what it returned parses to
  the same prompts.
"""

from __future__ import annotations

from services.common.errors import MAX_DETAIL_BYTES, InvalidArgument, clip
from services.prompts.backups import export_document, parse_export
from services.prompts.model import validate_prompt
from services.prompts.render import PLACEHOLDER, placeholders, render

MAX_CHARS = 200
MAX_PROMPTS = 100


def _check_render(template: str, variables: dict[str, str]) -> None:
    names = placeholders(template)
    assert len(names) == len(set(names))
    missing = sorted(set(names) - variables.keys())
    try:
        text = render(template, variables, max_chars=MAX_CHARS)
    except InvalidArgument as error:
        if error.reason == "MISSING_VARIABLE":
            # Error details are bounded (services.common.errors): long names are clipped, and past the
            # details' budget only the first missing names are named.
            fields = [v.field for v in error.violations]
            assert fields and fields == [clip(f"variables.{name}", MAX_DETAIL_BYTES) for name in missing][: len(fields)]
        else:
            assert error.reason == "RENDERED_TOO_LONG" and not missing
            assert len(PLACEHOLDER.sub(lambda match: variables[match.group(1)], template)) > MAX_CHARS
        return
    assert not missing
    assert text == PLACEHOLDER.sub(lambda match: variables[match.group(1)], template)
    assert len(text) <= MAX_CHARS


def _check_export(data: bytes) -> None:
    try:
        prompts = parse_export(data, max_prompts=MAX_PROMPTS)
    except InvalidArgument as error:
        assert error.reason in (
            "MALFORMED_EXPORT",
            "WRONG_EXPORT_VERSION",
            "MALFORMED_PROMPT",
            "INVALID_FIELD",
            "RESTORE_TOO_LARGE",
        )
        return
    for prompt in prompts:
        validate_prompt(prompt)
    assert parse_export(export_document(prompts), max_prompts=MAX_PROMPTS) == sorted(
        prompts, key=lambda prompt: prompt.id
    )


def TestOneInput(data: bytes) -> None:
    template, *pairs = data.decode("utf-8", "replace").split("\x00")
    variables = dict(pair.partition("=")[::2] for pair in pairs)
    _check_render(template, variables)
    _check_export(data)
