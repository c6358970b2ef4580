"""The `multipart/form-data` parser of the vision service (`services.vision.multipart`).

The input is a Content-Type header line, a newline, then the body; without a newline it is all body under
`multipart/form-data; boundary=XyZ`.

- `parse_form` returns text fields and file parts within the limits, or raises InvalidArgument with one of
  its documented reasons (ImageTooLarge for a file over the limit).
- Round trip: a parsed form encoded again, under a boundary found in none of its parts, parses to the
  same form.
- `parse_header_value` returns a lower-cased type and parameters, or raises MALFORMED_MULTIPART.
"""

from __future__ import annotations

import re

from services.common.errors import InvalidArgument
from services.vision.images import ImageTooLarge
from services.vision.multipart import Form, parse_form, parse_header_value

DEFAULT_CONTENT_TYPE = "multipart/form-data; boundary=XyZ"
MAX_PARTS = 4
MAX_FIELD_BYTES = 256
MAX_FILE_BYTES = 512
REASONS = {
    "MALFORMED_MULTIPART",
    "TOO_MANY_PARTS",
    "PART_HEADERS_TOO_LARGE",
    "FIELD_TOO_LARGE",
    "DUPLICATE_FIELD",
    "INVALID_UTF8",
    "IMAGE_TOO_LARGE",
}
# What the parser reads as an unquoted parameter value.
_TOKEN = re.compile(r'[^\s;"]+')
# Escapes the parser undoes in quoted values; a value that holds one literally cannot be quoted unambiguously.
_ESCAPE_LOOKALIKE = re.compile(r"%(22|0[dD]|0[aA])")


def _parse(content_type: str, body: bytes) -> Form | None:
    try:
        form = parse_form(
            content_type, body, max_parts=MAX_PARTS, max_field_bytes=MAX_FIELD_BYTES, max_file_bytes=MAX_FILE_BYTES
        )
    except ImageTooLarge as error:
        assert error.size > error.limit == MAX_FILE_BYTES
        return None
    except InvalidArgument as error:
        assert error.reason in REASONS, error.reason
        return None
    assert len(form.fields) + len(form.files) <= MAX_PARTS
    assert not form.fields.keys() & form.files.keys()
    for name, value in form.fields.items():
        assert name and isinstance(value, str) and len(value.encode("utf-8")) <= MAX_FIELD_BYTES
    for name, part in form.files.items():
        assert name and len(part.data) <= MAX_FILE_BYTES and part.content_type
    return form


def _quote(value: str) -> str | None:
    """A parameter value as a sender would write it; None if no form of it parses back the same."""
    if _TOKEN.fullmatch(value):
        return value
    if _ESCAPE_LOOKALIKE.search(value):
        return None
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "%0D").replace("\n", "%0A")
    return f'"{escaped}"'


def _encode(form: Form) -> tuple[str, bytes] | None:
    """The form as a body and its content type, or None if a name cannot be written so that it reads back."""
    parts: list[tuple[bytes, bytes]] = []
    for name, value in form.fields.items():
        quoted = _quote(name)
        if quoted is None:
            return None
        parts.append((f"Content-Disposition: form-data; name={quoted}".encode(), value.encode()))
    for name, part in form.files.items():
        quoted, filename = _quote(name), _quote(part.filename)
        if quoted is None or filename is None:
            return None
        head = f"Content-Disposition: form-data; name={quoted}; filename={filename}"
        parts.append((f"{head}\r\nContent-Type: {part.content_type}".encode(), bytes(part.data)))
    boundary = "b"
    while any(b"--" + boundary.encode() in head + data for head, data in parts):
        boundary += "x"
    delimiter = b"--" + boundary.encode()
    body = b"".join(delimiter + b"\r\n" + head + b"\r\n\r\n" + data + b"\r\n" for head, data in parts)
    return f"multipart/form-data; boundary={boundary}", body + delimiter + b"--\r\n"


def TestOneInput(data: bytes) -> None:
    head, newline, rest = data.partition(b"\n")
    content_type, body = (head.decode("utf-8", "replace"), rest) if newline else (DEFAULT_CONTENT_TYPE, data)
    try:
        media_type, params = parse_header_value(content_type)
        assert media_type == media_type.lower() and all(name == name.lower() for name in params)
    except InvalidArgument as error:
        assert error.reason == "MALFORMED_MULTIPART"
    form = _parse(content_type, body)
    if form is None:
        return
    encoded = _encode(form)
    if encoded is None:
        return
    again = _parse(*encoded)
    assert again is not None, encoded
    assert again.fields == form.fields
    assert again.files.keys() == form.files.keys()
    for name, part in form.files.items():
        other = again.files[name]
        assert (other.filename, other.content_type) == (part.filename, part.content_type)
        assert other.data == part.data
