"""Image sniffing, base64 and image URLs (`services.vision.images`).

The input is raw image bytes; as text it is also `image_base64` and `image_url` as a caller sends them.

- `sniff` names an accepted type or None, and `check_image` agrees with it: an Image of that type, or
  InvalidArgument UNSUPPORTED_IMAGE_TYPE (ImageTooLarge over the limit).
- `decode_base64` and `check_image_url` return a checked image or URL, or raise InvalidArgument with their
  documented reasons; a decoded image's data URL decodes back to the same bytes.
- Round trip: the input's base64, plain or as a data URL of any declared type, decodes to the input.
"""

from __future__ import annotations

import binascii
from urllib.parse import urlsplit

from services.common.errors import InvalidArgument
from services.vision.images import Image, ImageTooLarge, check_image, check_image_url, decode_base64, sniff

MAX_BYTES = 2048
_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif"}


def _checked(data: bytes) -> Image | None:
    mime = sniff(data)
    assert mime is None or mime in _TYPES
    try:
        image = check_image(data, MAX_BYTES)
    except ImageTooLarge:
        assert len(data) > MAX_BYTES
        return None
    except InvalidArgument as error:
        assert error.reason == "UNSUPPORTED_IMAGE_TYPE" and mime is None
        return None
    assert image.mime == mime and bytes(image.data) == data
    return image


def _decoded(text: str) -> Image | None:
    try:
        image = decode_base64(text, MAX_BYTES)
    except ImageTooLarge as error:
        assert error.size > MAX_BYTES
        return None
    except InvalidArgument as error:
        assert error.reason in ("INVALID_BASE64", "UNSUPPORTED_IMAGE_TYPE"), error.reason
        return None
    assert image.mime == sniff(image.data) and image.size <= MAX_BYTES
    url = image.data_url()
    assert url.startswith(f"data:{image.mime};base64,")
    assert decode_base64(url, MAX_BYTES) == image
    return image


def _check_url(text: str) -> None:
    for max_bytes in (None, MAX_BYTES):
        try:
            url = check_image_url(text, max_bytes)
        except InvalidArgument as error:
            assert error.reason in ("INVALID_IMAGE_URL", "INVALID_BASE64", "UNSUPPORTED_IMAGE_TYPE", "IMAGE_TOO_LARGE")
            continue
        if url.lower().startswith("data:"):
            assert url.lower().startswith("data:image/")
            if max_bytes is not None:
                image = decode_base64(url, MAX_BYTES)
                assert url == image.data_url()
        else:
            assert url == text and urlsplit(url).scheme.lower() in ("http", "https") and urlsplit(url).hostname


def TestOneInput(data: bytes) -> None:
    image = _checked(data)
    encoded = binascii.b2a_base64(data, newline=False).decode("ascii")
    for text in (encoded, f"data:application/x-anything;base64,{encoded}", f"{encoded[:7]}\r\n {encoded[7:]}"):
        decoded = _decoded(text)
        assert (decoded is None) == (image is None), text
        assert decoded is None or bytes(decoded.data) == data
    text = data.decode("utf-8", "replace")
    _decoded(text)
    _check_url(text)
    _check_url(f"data:image/png;base64,{encoded}")
