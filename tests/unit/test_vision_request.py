"""Vision requests from JSON and multipart bodies: one image source, typed fields, precise errors."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from services.common.errors import InvalidArgument
from services.vision.images import ImageTooLarge
from services.vision.request import parse_request

PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)
PNG_B64 = base64.b64encode(PNG).decode()
LIMIT = 1024


def _json(body: dict[str, Any]) -> Any:
    return parse_request("application/json", json.dumps(body).encode(), max_image_bytes=LIMIT)


def _form(data: dict[str, str], files: dict[str, Any] | None = None) -> Any:
    request = httpx.Request("POST", "http://x/", data=data, files=files)
    return parse_request(request.headers["content-type"], request.read(), max_image_bytes=LIMIT)


def test_json_defaults_and_image_base64() -> None:
    request = _json({"prompt": "Describe.", "image_base64": PNG_B64, "variables": {"n": 3, "s": "x"}})
    assert (request.namespace, request.lang, request.prompt_id, request.max_tokens) == ("default", "en", None, 0)
    assert request.variables == {"n": "3", "s": "x"}
    assert request.image is not None and request.image.mime == "image/png" and request.image_url is None
    assert request.image.data_url() == f"data:image/png;base64,{PNG_B64}"


def test_http_urls_pass_through_and_data_urls_are_checked_here() -> None:
    assert _json({"image_url": "https://example.com/cat.png"}).image_url == "https://example.com/cat.png"
    request = _json({"image_url": f"DATA:image/png;base64,{PNG_B64}"})
    assert request.image is not None and request.image_url is None
    with pytest.raises(ImageTooLarge):
        _json({"image_url": "data:image/png;base64," + base64.b64encode(PNG + bytes(LIMIT)).decode()})


def test_multipart_fields_are_typed_like_json() -> None:
    request = _form(
        {"prompt_id": "7", "max_tokens": "20", "temperature": "0.5", "variables": '{"a": "b"}', "lang": "ru"},
        {"image": ("cat.png", PNG, "image/png")},
    )
    assert (request.prompt_id, request.max_tokens, request.temperature, request.lang) == (7, 20, 0.5, "ru")
    assert request.variables == {"a": "b"} and request.image is not None and request.image.size == len(PNG)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"image_base64": PNG_B64, "colour": "red"}, "colour"),
        ({"image_base64": PNG_B64, "prompt_id": 0}, "prompt_id"),
        ({"image_base64": PNG_B64, "prompt_id": "7"}, "prompt_id"),
        ({"image_base64": PNG_B64, "max_tokens": -1}, "max_tokens"),
        ({"image_base64": PNG_B64, "temperature": 3}, "temperature"),
        ({"image_base64": PNG_B64, "prompt": "   "}, "prompt"),
        ({"image_base64": PNG_B64, "model": 5}, "model"),
        ({"image_base64": PNG_B64, "variables": ["x"]}, "variables"),
        ({"image_base64": PNG_B64, "variables": {"x": None}}, "variables.x"),
        ({"image_base64": PNG_B64, "image_url": "https://example.com/a.png"}, "image"),
        ({"prompt": "x"}, "image"),
        ({"image_url": "ftp://example.com/a.png"}, "image_url"),
        ({"image_base64": 12}, "image_base64"),
    ],
)
def test_invalid_fields_are_named(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        _json(body)
    assert field in [v.field for v in caught.value.violations] or caught.value.message.startswith(field)


@pytest.mark.parametrize("name", ["model", "provider", "namespace", "lang"])
def test_names_longer_than_any_the_suite_keeps_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        _json({"image_base64": PNG_B64, name: "n" * 30_000})
    assert [v.field for v in caught.value.violations] == [name]
    assert "nnn" not in caught.value.message


def test_a_long_variable_name_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        _json({"image_base64": PNG_B64, "variables": {"v" * 201: "x"}})
    assert [v.field for v in caught.value.violations] == ["variables"]


def test_an_unknown_field_is_echoed_as_a_short_prefix() -> None:
    with pytest.raises(InvalidArgument) as caught:
        _json({"image_base64": PNG_B64, "f" * 200_000: 1})
    assert caught.value.message == f"{'f' * 64!r}\u2026 (200000 characters) is not a field of a vision request"


def test_bodies_that_are_neither_json_objects_nor_forms() -> None:
    for content_type, body in (("application/json", b"[1]"), ("application/json", b"{"), ("text/plain", b"x")):
        with pytest.raises(InvalidArgument):
            parse_request(content_type, body, max_image_bytes=LIMIT)
    with pytest.raises(InvalidArgument, match="number"):
        _form({"prompt_id": "seven"}, {"image": ("a.png", PNG, "image/png")})
    with pytest.raises(InvalidArgument, match="one image file"):
        _form({}, {"a": ("a.png", PNG, "image/png"), "b": ("b.png", PNG, "image/png")})
