"""Image checks: type by magic bytes, size limits, base64 and image URLs.

A declared content type (a multipart part's, a data URL's) is never trusted: the bytes decide, and the
data URL sent on to the llm service names the sniffed type. Images can be megabytes, so base64 is decoded
once, buffers are sliced with memoryviews rather than copied, and the base64 text a caller sent is kept
to build the data URL instead of being encoded again.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urlsplit

from services.common.errors import FieldViolation, InvalidArgument


@dataclass(frozen=True, slots=True)
class ImageType:
    mime: str
    name: str
    # Alternative signatures; each is (offset, bytes) pairs that must all match.
    signatures: tuple[tuple[tuple[int, bytes], ...], ...]


IMAGE_TYPES: tuple[ImageType, ...] = (
    ImageType("image/jpeg", "JPEG", (((0, b"\xff\xd8\xff"),),)),
    ImageType("image/png", "PNG", (((0, b"\x89PNG\r\n\x1a\n"),),)),
    ImageType("image/webp", "WebP", (((0, b"RIFF"), (8, b"WEBP")),)),
    ImageType("image/gif", "GIF", (((0, b"GIF87a"),), ((0, b"GIF89a"),))),
)
ACCEPTED_TYPES = ", ".join(kind.name for kind in IMAGE_TYPES)

_BAD_URL = "INVALID_IMAGE_URL"
# Where a data URL's comma must appear; it also bounds the scan of a text that has none.
_DATA_URL_HEADER_MAX = 256
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


class ImageTooLarge(InvalidArgument):
    """An image over the size limit: a 400 to gRPC, which has no 413, so the service sets `http_status`."""

    http_status: ClassVar[int] = 413

    def __init__(self, size: int, limit: int, *, field: str = "image", exact: bool = True) -> None:
        # Sizes known only from a lower bound (base64 length, a stream cut short) say "at least".
        amount = f"{size} bytes" if exact else f"at least {size} bytes"
        message = f"{field} is {amount}, over the limit of {limit} bytes"
        super().__init__(
            message,
            reason="IMAGE_TOO_LARGE",
            metadata={"size": str(size), "limit": str(limit)},
            violations=(FieldViolation(field, message),),
        )
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Image:
    """A checked image: `mime` is the sniffed type, `data` the raw bytes (a view into the request, maybe)."""

    mime: str
    data: bytes | memoryview
    # The base64 of `data` when the caller sent it so; spares data_url() an encode.
    encoded: str | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> int:
        return len(self.data)

    def data_url(self) -> str:
        """`data:<mime>;base64,<data>`, as the llm service takes images."""
        encoded = self.encoded
        if encoded is None:
            encoded = binascii.b2a_base64(self.data, newline=False).decode("ascii")
        return f"data:{self.mime};base64,{encoded}"


def sniff(data: bytes | memoryview) -> str | None:
    """The MIME type of an accepted image format, judged by its magic bytes only; None otherwise."""
    for kind in IMAGE_TYPES:
        for signature in kind.signatures:
            if all(data[offset : offset + len(magic)] == magic for offset, magic in signature):
                return kind.mime
    return None


def _invalid(field: str, message: str, reason: str) -> InvalidArgument:
    return InvalidArgument(message, reason=reason, violations=(FieldViolation(field, message),))


def check_image(data: bytes | memoryview, max_bytes: int, *, field: str = "image") -> Image:
    """Checks raw image bytes (a multipart file part, a fetched body) for size and type; never copies them."""
    if len(data) > max_bytes:
        raise ImageTooLarge(len(data), max_bytes, field=field)
    mime = sniff(data)
    if mime is None:
        what = "empty" if len(data) == 0 else "not an image of an accepted type"
        raise _invalid(field, f"{field} is {what}; accepted types: {ACCEPTED_TYPES}", "UNSUPPORTED_IMAGE_TYPE")
    return Image(mime, data)


def decode_base64(text: str, max_bytes: int, *, field: str = "image_base64") -> Image:
    """Decodes plain base64 or a `data:...;base64,` URL into a checked image.

    Line breaks and spaces (as MIME encoders and some clients add) are allowed; anything else that is not
    strict base64 is refused with INVALID_BASE64. A data URL's declared type is ignored: the bytes decide.
    """
    if " " in text or "\n" in text or "\r" in text or "\t" in text:
        text = "".join(text.split())
    payload = _data_url_payload(text, field) if text[:5].lower() == "data:" else text
    if len(payload) % 4:
        raise _invalid(field, f"{field} is not valid base64: its length is not a multiple of 4", "INVALID_BASE64")
    # The size is known from the length and padding, so an image too large is refused before decoding.
    size = len(payload) // 4 * 3 - (2 if payload.endswith("==") else 1 if payload.endswith("=") else 0)
    if size > max_bytes:
        raise ImageTooLarge(size, max_bytes, field=field)
    try:
        data = binascii.a2b_base64(payload, strict_mode=True)
    except ValueError as error:  # binascii.Error, or non-ASCII text
        raise _invalid(field, f"{field} is not valid base64: {error}", "INVALID_BASE64") from None
    # strict_mode still lets a whole group of padding (`====`) through; the text is sent on, so it must be clean.
    if len(data) != size:
        raise _invalid(field, f"{field} is not valid base64: excess padding", "INVALID_BASE64")
    image = check_image(data, max_bytes, field=field)
    return Image(image.mime, data, encoded=payload)


def _data_url_payload(text: str, field: str) -> str:
    comma = text.find(",", 0, _DATA_URL_HEADER_MAX)
    if comma < 0 or not text[:comma].lower().endswith(";base64"):
        raise _invalid(field, f"{field} is a data URL but not data:<type>;base64,<data>", "INVALID_BASE64")
    return text[comma + 1 :]


def check_image_url(url: str, max_bytes: int | None = None, *, field: str = "image_url") -> str:
    """Checks an `image_url`: http(s) with a host, or a base64 `data:image/...` URL; returns the URL to use.

    With `max_bytes`, a data URL is decoded and checked as an image and returned naming its sniffed type.
    Without, only its form is checked: for callers that go on to `decode_base64` it, so it is decoded once.
    """
    scheme = url[: url.find(":", 0, 16) + 1].lower()
    if scheme == "data:":
        header = url[: url.find(",", 0, _DATA_URL_HEADER_MAX) + 1].lower()
        if not (header.startswith("data:image/") and header.endswith(";base64,")):
            raise _invalid(field, f"{field} must be a base64 image data URL: data:image/<type>;base64,<data>", _BAD_URL)
        if max_bytes is None:
            return url
        image = decode_base64(url, max_bytes, field=field)
        # An already normalised URL (its header names the sniffed type, no whitespace) is returned as it is.
        prefix = f"data:{image.mime};base64,"
        if image.encoded is not None and len(url) == len(prefix) + len(image.encoded) and url.startswith(prefix):
            return url
        return image.data_url()
    if scheme in ("http:", "https:") and _has_host(url):
        return url
    raise _invalid(field, f"{field} must be an http(s) URL with a host, or a data:image/...;base64 URL", _BAD_URL)


def _has_host(url: str) -> bool:
    if _CONTROL_OR_SPACE.search(url):
        return False
    try:
        parts = urlsplit(url)
        # .port raises ValueError for a port out of range or not a number.
        return bool(parts.hostname) and parts.port != 0
    except ValueError:  # also a bad IPv6 literal
        return False
