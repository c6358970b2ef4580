"""The vision service's request parser (`services.vision.request.parse_request`): a JSON or multipart body.

The input is a Content-Type header line, a newline, then the body; without a newline it is all body under
`application/json`.

- `parse_request` returns a `VisionRequest` whose fields have their documented types and ranges and that
  carries exactly one image source, or raises InvalidArgument (ImageTooLarge for 413).
- A JSON body that parses gives the same request when sent again as multipart/form-data.
"""

from __future__ import annotations

from typing import Any

import orjson

from fuzz.multipart import REASONS as MULTIPART_REASONS
from services.common.errors import InvalidArgument
from services.vision.images import sniff
from services.vision.request import MAX_PROMPT_CHARS, MAX_VARIABLES, VisionRequest, parse_request

MAX_IMAGE_BYTES = 1024
_BOUNDARY = "fuzz-boundary-7Qx"
_REASONS = {
    "INVALID_FIELD",
    "UNKNOWN_FIELD",
    "IMAGE_REQUIRED",
    "UNSUPPORTED_MEDIA_TYPE",
    "MALFORMED_BODY",
    "INVALID_BASE64",
    "INVALID_IMAGE_URL",
    "UNSUPPORTED_IMAGE_TYPE",
    *MULTIPART_REASONS,
}


def _parse(content_type: str, body: bytes) -> VisionRequest | None:
    try:
        request = parse_request(content_type, body, max_image_bytes=MAX_IMAGE_BYTES)
    except InvalidArgument as error:
        assert error.reason in _REASONS, error.reason
        return None
    assert (request.image_url is None) != (request.image is None)
    if request.image is not None:
        assert request.image.size <= MAX_IMAGE_BYTES and request.image.mime == sniff(request.image.data)
    else:
        assert isinstance(request.image_url, str) and request.image_url.lower().startswith(("http://", "https://"))
    for name in ("provider", "model", "namespace", "lang"):
        assert isinstance(getattr(request, name), str)
    assert request.namespace and request.lang
    assert request.prompt is None or (request.prompt.strip() and len(request.prompt) <= MAX_PROMPT_CHARS)
    assert request.prompt_id is None or (type(request.prompt_id) is int and request.prompt_id >= 1)
    assert type(request.max_tokens) is int and request.max_tokens >= 0
    assert request.temperature is None or (type(request.temperature) is float and 0 <= request.temperature <= 2)
    assert len(request.variables) <= MAX_VARIABLES
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in request.variables.items())
    return request


def _as_form_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _as_multipart(values: dict[str, Any]) -> bytes | None:
    """The JSON body's fields as form fields, or None where a field's text form could mean something else.

    A null leaves a JSON field out, but in a form it is the text "null".
    """
    body = b""
    for name, value in values.items():
        if value is None:
            return None
        text = _as_form_text(value)
        if not name.isidentifier() or f"--{_BOUNDARY}" in text:
            return None
        body += f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{text}\r\n'.encode()
    return body + f"--{_BOUNDARY}--\r\n".encode()


def TestOneInput(data: bytes) -> None:
    head, newline, rest = data.partition(b"\n")
    content_type, body = (head.decode("utf-8", "replace"), rest) if newline else ("application/json", data)
    request = _parse(content_type, body)
    if request is None or not content_type.lower().startswith("application/json"):
        return
    values = orjson.loads(body)
    multipart = _as_multipart(values)
    if multipart is None:
        return
    again = _parse(f'multipart/form-data; boundary="{_BOUNDARY}"', multipart)
    assert again == request, (again, request)
