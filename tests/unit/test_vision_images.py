"""Image checks: magic-byte sniffing, base64 and data URLs, size limits, image URLs."""

from __future__ import annotations

import base64

import pytest

from services.common.errors import InvalidArgument
from services.vision.images import Image, ImageTooLarge, check_image, check_image_url, decode_base64, sniff

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(200))
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + bytes(50)
GIF87 = b"GIF87a" + bytes(20)
GIF89 = b"GIF89a" + bytes(20)
WEBP = b"RIFF" + (1234).to_bytes(4, "little") + b"WEBPVP8 " + bytes(20)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def reason_of(error: pytest.ExceptionInfo[InvalidArgument]) -> str:
    return error.value.reason


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF87, "image/gif"),
        (GIF89, "image/gif"),
        (WEBP, "image/webp"),
        (b"", None),
        (b"\x89PNG", None),
        (b"GIF88a" + bytes(10), None),
        (b"RIFF" + bytes(4) + b"WAVEfmt ", None),
        (b"%PDF-1.7\n", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
    ],
)
def test_sniff_by_magic_bytes(data: bytes, mime: str | None) -> None:
    assert sniff(data) == mime
    assert sniff(memoryview(data)) == mime


def test_check_image_keeps_a_view_without_copying() -> None:
    body = b"junk" + PNG + b"junk"
    view = memoryview(body)[4 : 4 + len(PNG)]
    image = check_image(view, max_bytes=len(PNG))
    assert image.mime == "image/png"
    assert image.data is view
    assert image.size == len(PNG)


def test_check_image_size_and_type() -> None:
    with pytest.raises(ImageTooLarge) as too_large:
        check_image(PNG, max_bytes=len(PNG) - 1, field="image")
    assert too_large.value.reason == "IMAGE_TOO_LARGE"
    assert too_large.value.http_status == 413
    assert (too_large.value.size, too_large.value.limit) == (len(PNG), len(PNG) - 1)
    assert f"{len(PNG)} bytes" in too_large.value.message
    assert str(len(PNG) - 1) in too_large.value.message
    # Still an InvalidArgument, so the error table maps it without knowing it.
    assert isinstance(too_large.value, InvalidArgument)

    with pytest.raises(InvalidArgument) as unsupported:
        check_image(b"%PDF-1.7\n", max_bytes=100)
    assert reason_of(unsupported) == "UNSUPPORTED_IMAGE_TYPE"
    assert "JPEG, PNG, WebP, GIF" in unsupported.value.message

    with pytest.raises(InvalidArgument, match="empty") as empty:
        check_image(b"", max_bytes=100)
    assert reason_of(empty) == "UNSUPPORTED_IMAGE_TYPE"


def test_decode_plain_base64() -> None:
    image = decode_base64(b64(PNG), max_bytes=10_000)
    assert image == Image("image/png", PNG)
    assert image.data_url() == "data:image/png;base64," + b64(PNG)


def test_decode_a_data_url_trusts_the_bytes_over_the_declared_type() -> None:
    image = decode_base64("data:image/gif;base64," + b64(JPEG), max_bytes=10_000)
    assert image.mime == "image/jpeg"
    assert image.data_url() == "data:image/jpeg;base64," + b64(JPEG)
    assert decode_base64("DATA:image/webp;charset=x;BASE64," + b64(WEBP), 10_000).mime == "image/webp"


def test_whitespace_that_clients_send_is_allowed() -> None:
    wrapped = base64.encodebytes(PNG).decode()  # 76-character lines
    assert "\n" in wrapped
    assert decode_base64(wrapped, 10_000).data == PNG
    assert decode_base64("  " + b64(PNG).replace("A", "A\r\n\t") + "\n", 10_000).data == PNG
    # The URL sent on carries no whitespace.
    assert decode_base64(wrapped, 10_000).data_url() == "data:image/png;base64," + b64(PNG)


def test_data_url_is_encoded_once_from_raw_bytes() -> None:
    assert Image("image/gif", memoryview(GIF89)).data_url() == "data:image/gif;base64," + b64(GIF89)


@pytest.mark.parametrize(
    "text",
    [
        b64(PNG)[:-1],  # bad padding
        b64(PNG) + "=",  # excess padding
        b64(PNG) + "====",  # a whole group of it, which strict_mode lets through
        "aGVsbG8",  # unpadded
        "=" + b64(PNG),
        b64(PNG)[:8] + "!" + b64(PNG)[9:],
        b64(PNG).replace("A", "-"),  # url-safe alphabet
        "aGVsbG8=é",
        "data:image/png," + b64(PNG),  # not base64-encoded
        "data:image/png;base64" + b64(PNG),  # no comma
    ],
)
def test_invalid_base64_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_base64(text, 10_000)
    assert reason_of(caught) == "INVALID_BASE64"
    assert caught.value.violations[0].field == "image_base64"


def test_size_limit_is_checked_before_decoding() -> None:
    data = PNG + bytes(1000 - len(PNG))
    assert decode_base64(b64(data), max_bytes=1000).size == 1000
    # Exact from the length and padding: 1000 bytes is 1336 characters ending in "==", as 1001 bytes end in "=".
    with pytest.raises(ImageTooLarge) as padded:
        decode_base64(b64(data), max_bytes=999)
    assert "is 1000 bytes" in padded.value.message
    with pytest.raises(ImageTooLarge) as one_over:
        decode_base64(b64(data + b"x"), max_bytes=1000)
    assert "is 1001 bytes" in one_over.value.message
    # So even text that is not base64 at all is refused for its size, without decoding it.
    with pytest.raises(ImageTooLarge) as undecoded:
        decode_base64("!" * 4000, max_bytes=1000)
    assert "is 3000 bytes" in undecoded.value.message
    assert undecoded.value.violations[0].field == "image_base64"


def test_unsupported_type_in_base64() -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_base64(b64(b"<svg/>"), 10_000, field="image_url")
    assert reason_of(caught) == "UNSUPPORTED_IMAGE_TYPE"
    assert caught.value.violations[0].field == "image_url"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/cat.png",
        "http://example.com:8080/a/b.jpg?x=1#y",
        "HTTPS://EXAMPLE.COM/cat.png",
        "http://[2001:db8::1]/x.gif",
    ],
)
def test_http_urls_pass_unchanged(url: str) -> None:
    assert check_image_url(url) == url
    assert check_image_url(url, 10) == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "file:///etc/passwd",
        "ftp://example.com/a.png",
        "javascript:alert(1)",
        "example.com/a.png",
        "//example.com/a.png",
        "http://",
        "http:///a.png",
        "https://exa mple.com/a.png",
        "https://example.com/a\n.png",
        "http://[::1/",
        "http://example.com:99999/",
        "http://example.com:0/",
        "data:text/plain;base64,aGk=",
        "data:image/png," + b64(PNG),
        "data:;base64," + b64(PNG),
    ],
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_image_url(url, 10_000)
    assert reason_of(caught) == "INVALID_IMAGE_URL"
    assert caught.value.violations[0].field == "image_url"


def test_data_urls_are_checked_and_normalised() -> None:
    canonical = "data:image/png;base64," + b64(PNG)
    assert check_image_url(canonical, 10_000) is canonical
    assert check_image_url("data:image/jpeg;base64," + b64(PNG), 10_000) == canonical
    assert check_image_url("Data:Image/PNG;base64," + base64.encodebytes(PNG).decode(), 10_000) == canonical
    # Without a limit only the form is checked, for callers that decode it themselves.
    assert check_image_url("data:image/png;base64,!!!") == "data:image/png;base64,!!!"

    with pytest.raises(InvalidArgument) as bad:
        check_image_url("data:image/png;base64,!!!!", 10_000)
    assert reason_of(bad) == "INVALID_BASE64"
    with pytest.raises(ImageTooLarge):
        check_image_url(canonical, 10)
