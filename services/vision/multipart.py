"""A strict `multipart/form-data` parser (RFC 7578 over RFC 2046 framing) for bodies already in memory.

The edge hands the whole body over as one `HttpBody`, so there is nothing to stream: parts are found with
`bytes.find` and file contents are memoryview slices of the body, never copies. Every error is an
InvalidArgument with one of the reasons MALFORMED_MULTIPART, TOO_MANY_PARTS, PART_HEADERS_TOO_LARGE,
FIELD_TOO_LARGE, DUPLICATE_FIELD or INVALID_UTF8, or an ImageTooLarge for a file over the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.common.errors import FieldViolation, InvalidArgument, quoted
from services.vision.images import ImageTooLarge

MAX_PART_HEADER_BYTES = 8 * 1024
# RFC 2046 limits a boundary to 70 characters; longer is a broken or hostile sender.
_MAX_BOUNDARY = 70

# A `; name=value` parameter, the value a token or a quoted string with backslash escapes.
_PARAM = re.compile(r'\s*([^\s=;"]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]*))\s*(?:;|\Z)', re.DOTALL)
# In quoted strings: httpx and RFC 2616 senders escape `"` and `\` with a backslash; browsers (WHATWG)
# percent-encode `"`, CR and LF and send other backslashes bare (`C:\x`), which this leaves alone.
_ESCAPE = re.compile(r'\\(["\\])|%(22|0[dD]|0[aA])')


@dataclass(frozen=True, slots=True)
class FilePart:
    filename: str
    # The declared media type, lower-cased without parameters; not trusted for images (they are sniffed).
    content_type: str
    # A slice of the request body.
    data: memoryview


@dataclass(frozen=True, slots=True)
class Form:
    fields: dict[str, str]
    files: dict[str, FilePart]


def _error(message: str, reason: str = "MALFORMED_MULTIPART", field: str = "body") -> InvalidArgument:
    return InvalidArgument(message, reason=reason, violations=(FieldViolation(field, message),))


def _unescape(match: re.Match[str]) -> str:
    return match.group(1) or chr(int(match.group(2), 16))


def parse_header_value(value: str) -> tuple[str, dict[str, str]]:
    """`type; a=b; c="d"` as ("type", {"a": "b", "c": "d"}): type and parameter names lower-cased."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    position = 0
    while rest[position:].strip(" \t;"):
        match = _PARAM.match(rest, position)
        if match is None:
            raise _error(f"malformed header parameters: {quoted(value)}")
        name, quoted_string, token = match.groups()
        name = name.lower()
        if name in params:
            raise _error(f"the parameter {quoted(name)} is repeated in {quoted(value)}")
        params[name] = _ESCAPE.sub(_unescape, quoted_string) if quoted_string is not None else token
        position = match.end()
    return main.strip().lower(), params


def _boundary(content_type: str) -> bytes:
    media_type, params = parse_header_value(content_type)
    if media_type != "multipart/form-data":
        raise _error(f"the content type is {quoted(media_type)}, not multipart/form-data")
    boundary = params.get("boundary")
    if not boundary:
        raise _error("the multipart/form-data content type has no boundary parameter")
    if len(boundary) > _MAX_BOUNDARY or not boundary.isascii() or not boundary.isprintable():
        raise _error(f"the boundary must be 1 to {_MAX_BOUNDARY} printable ASCII characters")
    return boundary.encode("ascii")


def _part_headers(raw: memoryview, index: int) -> dict[str, str]:
    try:
        text = str(raw, "utf-8")
    except UnicodeDecodeError:
        raise _error(f"the headers of part {index} are not UTF-8") from None
    headers: dict[str, str] = {}
    for line in text.split("\r\n") if text else ():
        name, colon, value = line.partition(":")
        name = name.lower()
        # No space may precede the colon, nor start a line (obsolete folding).
        if not colon or not name or name != name.strip() or name in headers:
            raise _error(f"part {index} has a malformed or repeated header line: {quoted(line)}")
        headers[name] = value.strip(" \t")
    return headers


def parse_form(
    content_type: str,
    body: bytes,
    *,
    max_parts: int = 32,
    max_field_bytes: int = 1024 * 1024,
    max_file_bytes: int,
) -> Form:
    """Parses a whole `multipart/form-data` body into UTF-8 text fields and file parts.

    A part is a file when it has a filename or a content type other than text/*; each name may appear once.
    """
    delimiter = b"--" + _boundary(content_type)
    view = memoryview(body)
    # The first delimiter opens the body or follows the preamble's line break.
    if body.startswith(delimiter):
        position = len(delimiter)
    else:
        start = body.find(b"\r\n" + delimiter)
        if start < 0:
            raise _error("the body has no part delimited by the boundary of the content type")
        position = start + 2 + len(delimiter)
    form = Form({}, {})
    index = 0
    while not body.startswith(b"--", position):  # `--` closes; the epilogue after it is ignored
        index += 1
        if index > max_parts:
            raise _error(f"the form has more than {max_parts} parts", "TOO_MANY_PARTS")
        # Only transport padding (spaces, tabs) may follow a delimiter on its line.
        line_end = body.find(b"\r\n", position)
        if line_end < 0:
            raise _error("the body ends before the closing boundary")
        if body[position:line_end].strip(b" \t"):
            raise _error(f"unexpected bytes after the boundary that opens part {index}")
        headers_end = body.find(b"\r\n\r\n", line_end, line_end + 4 + MAX_PART_HEADER_BYTES)
        if headers_end < 0:
            if len(body) - line_end > 4 + MAX_PART_HEADER_BYTES:
                raise _error(
                    f"the headers of part {index} exceed {MAX_PART_HEADER_BYTES} bytes", "PART_HEADERS_TOO_LARGE"
                )
            raise _error(f"the headers of part {index} do not end with a blank line")
        headers = _part_headers(view[line_end + 2 : headers_end], index)
        content_start = headers_end + 4
        content_end = body.find(b"\r\n" + delimiter, content_start)
        if content_end < 0:
            raise _error("the body ends before the closing boundary")
        _add_part(
            form,
            headers,
            view[content_start:content_end],
            index,
            max_field_bytes=max_field_bytes,
            max_file_bytes=max_file_bytes,
        )
        position = content_end + 2 + len(delimiter)
    return form


def _add_part(
    form: Form, headers: dict[str, str], data: memoryview, index: int, *, max_field_bytes: int, max_file_bytes: int
) -> None:
    disposition, params = parse_header_value(headers.get("content-disposition", ""))
    if disposition != "form-data":
        raise _error(f"part {index} has no Content-Disposition: form-data header")
    name = params.get("name")
    if not name:
        raise _error(f"part {index} has no name in its Content-Disposition")
    if name in form.fields or name in form.files:
        raise _error(f"the form field {quoted(name)} is given more than once", "DUPLICATE_FIELD", name)
    media_type = parse_header_value(headers["content-type"])[0] if "content-type" in headers else None
    # RFC 7578 forbids `filename*`; a sender that uses it anyway still means a file.
    if "filename" in params or "filename*" in params or (media_type is not None and not media_type.startswith("text/")):
        if len(data) > max_file_bytes:
            raise ImageTooLarge(len(data), max_file_bytes, field=name)
        form.files[name] = FilePart(params.get("filename", ""), media_type or "application/octet-stream", data)
        return
    if len(data) > max_field_bytes:
        raise _error(f"the form field {quoted(name)} is over {max_field_bytes} bytes", "FIELD_TOO_LARGE", name)
    try:
        form.fields[name] = str(data, "utf-8")
    except UnicodeDecodeError as error:
        raise _error(
            f"the form field {quoted(name)} is not valid UTF-8 (byte {error.start})", "INVALID_UTF8", name
        ) from None
