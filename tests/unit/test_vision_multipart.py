"""multipart/form-data parsing: bodies built by hand and by httpx's encoder, errors, and a round-trip property."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.errors import InvalidArgument
from services.vision.images import ImageTooLarge
from services.vision.multipart import MAX_PART_HEADER_BYTES, Form, parse_form, parse_header_value

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
CT = "multipart/form-data; boundary=XyZ"
MIB = 1024 * 1024


def parse(content_type: str, body: bytes, **limits: int) -> Form:
    return parse_form(content_type, body, max_file_bytes=limits.pop("max_file_bytes", MIB), **limits)


def encode(data: dict[str, str], files: dict[str, tuple[str, bytes, str]], boundary: str | None = None) -> Form:
    """What httpx sends for these fields and files, parsed."""
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"} if boundary else None
    request = httpx.Request("POST", "http://vision.test/v1/vision/analyze", data=data, files=files, headers=headers)
    return parse(request.headers["content-type"], request.read())


def fails(content_type: str, body: bytes, reason: str, **limits: int) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        parse(content_type, body, **limits)
    assert caught.value.reason == reason, caught.value.message
    return caught.value


def test_a_hand_built_body_with_preamble_padding_and_epilogue() -> None:
    body = (
        b"This is the preamble; it is ignored.\r\n"
        b"--XyZ  \t\r\n"  # transport padding after the delimiter
        b'content-disposition: form-data; name="prompt"\r\n'
        b"\r\n"
        b"What is in this picture?\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="image"; filename="cat.png"\r\n'
        b"Content-Type: IMAGE/PNG; name=x\r\n"
        b"\r\n" + PNG + b"\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="empty"\r\n'
        b"\r\n"
        b"\r\n"
        b"--XyZ--\r\n"
        b"This is the epilogue; also ignored. --XyZ\r\n"
    )
    form = parse(CT, body)
    assert form.fields == {"prompt": "What is in this picture?", "empty": ""}
    assert list(form.files) == ["image"]
    image = form.files["image"]
    assert (image.filename, image.content_type, bytes(image.data)) == ("cat.png", "image/png", PNG)
    # A slice of the body, not a copy.
    assert image.data.obj is body


def test_first_delimiter_may_open_the_body_and_parts_may_be_binary_without_filename() -> None:
    body = (
        b"--XyZ\r\n"
        b"Content-Disposition: form-data; name=image\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n" + PNG + b"\r\n--XyZ--"
    )
    form = parse(CT, body)
    assert form.fields == {}
    assert form.files["image"].filename == ""
    assert bytes(form.files["image"].data) == PNG


def test_zero_parts_is_an_empty_form() -> None:
    assert parse(CT, b"--XyZ--\r\n") == Form({}, {})


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ("multipart/form-data; boundary=XyZ", "XyZ"),
        ('Multipart/Form-Data; charset=utf-8; BOUNDARY="a b:c"', "a b:c"),
        ("multipart/form-data;boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW", "----WebKitFormBoundary7MA4YWxkTrZu0gW"),
    ],
)
def test_boundary_quoted_or_not(content_type: str, boundary: str) -> None:
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--{boundary}--'.encode()
    assert parse(content_type, body).fields == {"a": "b"}


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        'multipart/form-data; boundary=""',
        "multipart/form-data; boundary=" + "x" * 71,
        'multipart/form-data; boundary="a\x00b"',
        'multipart/form-data; boundary="unterminated',
        "multipart/mixed; boundary=XyZ",
        "application/json",
        "",
    ],
)
def test_bad_content_types(content_type: str) -> None:
    fails(content_type, b"--XyZ--", "MALFORMED_MULTIPART")


def test_quoted_parameters_with_escapes() -> None:
    value = r'form-data; name="a\"b"; filename="C:\new\\x %22q%22.png"; extra=token ; '
    assert parse_header_value(value) == (
        "form-data",
        {"name": 'a"b', "filename": r'C:\new\x "q".png', "extra": "token"},
    )


def test_httpx_fields_and_files() -> None:
    form = encode(
        {"prompt": "Qu'y a-t-il ? Ça, 日本語 and 🐈\r\nsecond line", "max_tokens": "100"},
        {"image": ('phötö "1".png', PNG, "image/png")},
    )
    assert form.fields == {"prompt": "Qu'y a-t-il ? Ça, 日本語 and 🐈\r\nsecond line", "max_tokens": "100"}
    image = form.files["image"]
    assert (image.filename, image.content_type, bytes(image.data)) == ('phötö "1".png', "image/png", PNG)


def test_binary_files_with_crlf_and_boundary_like_bytes() -> None:
    boundary = "b0undary"
    nasty = (
        PNG
        + b"\r\n\r\n--\r\n"
        + b"x--b0undary\r\n"  # the delimiter without the CRLF that must precede it
        + b"\r\n-b0undary\r\n--b0undar\r\n--B0UNDARY\r\n"
        + b"\r\n--b0undar"  # a prefix of the delimiter at the very end of the content
    )
    form = encode({}, {"image": ("x.png", nasty, "image/png"), "other": ("y.bin", b"\r\n", "image/gif")}, boundary)
    assert bytes(form.files["image"].data) == nasty
    assert bytes(form.files["other"].data) == b"\r\n"


def test_the_full_delimiter_inside_content_is_refused() -> None:
    # RFC 2046 forbids it; a sender whose boundary occurs in its content is broken.
    body = b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--XyZoops\r\n--XyZ--'
    error = fails(CT, body, "MALFORMED_MULTIPART")
    assert "after the boundary" in error.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"no delimiter at all", "no part"),
        (b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue', "closing boundary"),
        (b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue\r\n--XyZ', "closing boundary"),
        (b"--XyZ", "closing boundary"),
        (b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\nvalue\r\n--XyZ--', "blank line"),
        (b"--XyZ\r\n\r\nvalue\r\n--XyZ--", "Content-Disposition"),
        (b'--XyZ\r\nContent-Disposition: attachment; name="a"\r\n\r\nv\r\n--XyZ--', "Content-Disposition"),
        (b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nv\r\n--XyZ--", "no name"),
        (b'--XyZ\r\nContent-Disposition: form-data; name=""\r\n\r\nv\r\n--XyZ--', "no name"),
        (b'--XyZ\r\nContent-Disposition: form-data; name="a\r\n\r\nv\r\n--XyZ--', "parameters"),
        (b'--XyZ\r\nContent-Disposition: form-data; name="a"; name="b"\r\n\r\nv\r\n--XyZ--', "repeated"),
        (b'--XyZ\r\nContent-Disposition : form-data; name="a"\r\n\r\nv\r\n--XyZ--', "malformed"),
        (b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n folded\r\n\r\nv\r\n--XyZ--', "malformed"),
        (b'--XyZ\r\nContent-Disposition: form-data; name="\xff"\r\n\r\nv\r\n--XyZ--', "not UTF-8"),
        (b'--XyZ junk\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--XyZ--', "after the boundary"),
    ],
)
def test_malformed_bodies(body: bytes, message: str) -> None:
    error = fails(CT, body, "MALFORMED_MULTIPART")
    assert message in error.message


def test_headers_over_the_limit() -> None:
    header = b"X-Padding: " + b"p" * MAX_PART_HEADER_BYTES + b"\r\n"
    body = b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n' + header + b"\r\nv\r\n--XyZ--"
    fails(CT, body, "PART_HEADERS_TOO_LARGE")


def part(name: str, value: bytes = b"v", extra: bytes = b"") -> bytes:
    return (
        b'--XyZ\r\nContent-Disposition: form-data; name="'
        + name.encode()
        + b'"'
        + extra
        + b"\r\n\r\n"
        + value
        + b"\r\n"
    )


def test_limits() -> None:
    parts = b"".join(part(f"f{i}") for i in range(4))
    assert len(parse(CT, parts + b"--XyZ--", max_parts=4).fields) == 4
    fails(CT, parts + part("f4") + b"--XyZ--", "TOO_MANY_PARTS", max_parts=4)
    # Counted before the part is read, so a flood of parts costs nothing more.
    fails(CT, parts + part("f4") + b"--XyZ", "TOO_MANY_PARTS", max_parts=4)

    assert parse(CT, part("a", b"x" * 10) + b"--XyZ--", max_field_bytes=10).fields == {"a": "x" * 10}
    error = fails(CT, part("a", b"x" * 11) + b"--XyZ--", "FIELD_TOO_LARGE", max_field_bytes=10)
    assert error.violations[0].field == "a"

    file_part = part("image", PNG, b'; filename="a.png"') + b"--XyZ--"
    assert parse(CT, file_part, max_file_bytes=len(PNG)).files["image"].data.nbytes == len(PNG)
    with pytest.raises(ImageTooLarge) as too_large:
        parse(CT, file_part, max_file_bytes=len(PNG) - 1)
    assert (too_large.value.size, too_large.value.violations[0].field) == (len(PNG), "image")


def test_a_repeated_name_is_refused() -> None:
    error = fails(CT, part("a") + part("a") + b"--XyZ--", "DUPLICATE_FIELD")
    assert error.violations[0].field == "a"
    fails(CT, part("a") + part("a", PNG, b'; filename="a.png"') + b"--XyZ--", "DUPLICATE_FIELD")


def test_invalid_utf8_in_a_text_field() -> None:
    error = fails(CT, part("prompt", b"caf\xc3") + b"--XyZ--", "INVALID_UTF8")
    assert "prompt" in error.message
    # The same bytes as a file are fine: they are not text.
    assert bytes(parse(CT, part("f", b"caf\xc3", b'; filename="f"') + b"--XyZ--").files["f"].data) == b"caf\xc3"
    # text/* without a filename is a text field, so it must be UTF-8 as well.
    fails(CT, part("t", b"\xff", b"\r\nContent-Type: text/plain; charset=utf-8") + b"--XyZ--", "INVALID_UTF8")


# Names and filenames without control characters or `%`: httpx percent-encodes controls and `"`, and a
# literal "%22" would read back as `"` (the WHATWG encoding browsers use is ambiguous there by design).
_names = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="%"), min_size=1, max_size=20)
_files = st.tuples(_names, st.binary(max_size=300), st.sampled_from(["image/png", "application/octet-stream"]))


@settings(max_examples=200, deadline=None)
@given(
    fields=st.dictionaries(_names, st.text(max_size=50), max_size=4),
    files=st.dictionaries(_names, _files, min_size=1, max_size=3),
    boundary_in_content=st.booleans(),
)
def test_httpx_round_trip(
    fields: dict[str, str], files: dict[str, tuple[str, bytes, str]], boundary_in_content: bool
) -> None:
    # httpx sends an empty, non-multipart body for an empty form; one file keeps it multipart.
    fields = {name: value for name, value in fields.items() if name not in files}
    boundary = "hypothesis-boundary"
    if boundary_in_content:
        # Bytes that look like the delimiter without being it.
        files = {
            name: (f, data + b"\r\n--" + boundary[:-1].encode() + b"\r\n", ct) for name, (f, data, ct) in files.items()
        }
    form = encode(fields, files, boundary)
    assert form.fields == fields
    assert {name: (p.filename, bytes(p.data), p.content_type) for name, p in form.files.items()} == files
