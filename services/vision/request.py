"""A vision request from its HTTP body: JSON or multipart/form-data, checked field by field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from services.common.errors import FieldViolation, InvalidArgument, quoted
from services.common.transcoding import json_object
from services.vision.images import Image, check_image, check_image_url, decode_base64
from services.vision.multipart import parse_form

MAX_VARIABLES = 64
MAX_PROMPT_CHARS = 20_000
# Names (model, provider, namespace, lang, variable names) are at most this long everywhere in the suite.
MAX_NAME_CHARS = 200
# `prompt_id` and `max_tokens` travel on as int32 proto fields; a larger value would fail there as a 500.
MAX_INT32 = 2**31 - 1
_TEXT_FIELDS = ("provider", "model", "prompt", "namespace", "lang")
_FIELDS = {*_TEXT_FIELDS, "prompt_id", "variables", "image_url", "image_base64", "max_tokens", "temperature"}


@dataclass(frozen=True, slots=True)
class VisionRequest:
    provider: str = ""
    model: str = ""
    prompt: str | None = None
    prompt_id: int | None = None
    namespace: str = "default"
    lang: str = "en"
    variables: dict[str, str] = field(default_factory=dict)
    # An http(s) URL for the provider to fetch, or an image checked here.
    image_url: str | None = None
    image: Image | None = None
    max_tokens: int = 0
    temperature: float | None = None


def _invalid(name: str, problem: str, reason: str = "INVALID_FIELD") -> InvalidArgument:
    return InvalidArgument(f"{name}: {problem}", reason=reason, violations=(FieldViolation(name, problem),))


def _variables(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_VARIABLES:
        raise _invalid("variables", f"must be an object of at most {MAX_VARIABLES} names")
    variables = {}
    for name, value in raw.items():
        if len(name) > MAX_NAME_CHARS:
            raise _invalid("variables", f"names must be at most {MAX_NAME_CHARS} characters")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _invalid(f"variables.{name}", "must be a string or a number")
        variables[name] = value if isinstance(value, str) else str(value)
    return variables


def _image_source(values: dict[str, Any], image: Image | None, max_image_bytes: int) -> tuple[str | None, Image | None]:
    """Exactly one of `image_url`, `image_base64` or a file: an http(s) URL to pass on, or a checked image."""
    sources = [name for name in ("image_url", "image_base64") if values.get(name) is not None]
    if image is not None:
        sources.append("an image file")
    if len(sources) != 1:
        raise _invalid("image", "give exactly one of image_url, image_base64 or an image file", "IMAGE_REQUIRED")
    if image is not None:
        return None, image
    name = sources[0]
    if not isinstance(values[name], str):
        raise _invalid(name, "must be a string")
    # A data: URL is decoded once, here; an http(s) URL is only checked (the provider fetches it).
    if name == "image_base64" or values[name][:5].lower() == "data:":
        return None, decode_base64(values[name], max_image_bytes, field=name)
    return check_image_url(values[name]), None


def _build(values: dict[str, Any], image: Image | None, max_image_bytes: int) -> VisionRequest:
    """The request from decoded JSON values (multipart fields are converted to the same types first)."""
    if unknown := sorted(set(values) - _FIELDS):
        problem = "is not a field of a vision request"
        raise InvalidArgument(
            f"{quoted(unknown[0])} {problem}", reason="UNKNOWN_FIELD", violations=(FieldViolation(unknown[0], problem),)
        )
    for name in _TEXT_FIELDS:
        if name in values and not isinstance(values[name], str):
            raise _invalid(name, "must be a string")
        if name != "prompt" and len(values.get(name, "")) > MAX_NAME_CHARS:
            raise _invalid(name, f"must be at most {MAX_NAME_CHARS} characters")
    prompt = values.get("prompt")
    if prompt is not None and (not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS):
        raise _invalid("prompt", f"must be non-empty and at most {MAX_PROMPT_CHARS} characters")
    prompt_id = values.get("prompt_id")
    if prompt_id is not None and (type(prompt_id) is not int or not 1 <= prompt_id <= MAX_INT32):
        raise _invalid("prompt_id", f"must be an integer from 1 to {MAX_INT32}")
    max_tokens = values.get("max_tokens", 0)
    if type(max_tokens) is not int or not 0 <= max_tokens <= MAX_INT32:
        raise _invalid("max_tokens", f"must be an integer from 0 to {MAX_INT32}")
    temperature = values.get("temperature")
    if temperature is not None and (type(temperature) not in (int, float) or not 0 <= temperature <= 2):
        raise _invalid("temperature", "must be a number from 0 to 2")
    image_url, image = _image_source(values, image, max_image_bytes)
    return VisionRequest(
        provider=values.get("provider", ""),
        model=values.get("model", ""),
        prompt=prompt,
        prompt_id=prompt_id,
        namespace=values.get("namespace") or "default",
        lang=values.get("lang") or "en",
        variables=_variables(values.get("variables")),
        image_url=image_url,
        image=image,
        max_tokens=max_tokens,
        temperature=float(temperature) if temperature is not None else None,
    )


def _form_values(fields: dict[str, str]) -> dict[str, Any]:
    """Form fields as the JSON body's types: numbers and the variables object are parsed from text."""
    values: dict[str, Any] = dict(fields)
    for name, parse in (("prompt_id", int), ("max_tokens", int), ("temperature", float)):
        if name in values:
            try:
                values[name] = parse(values[name])
            except ValueError:
                raise _invalid(name, "must be a number") from None
    if "variables" in values:
        try:
            values["variables"] = orjson.loads(values["variables"])
        except orjson.JSONDecodeError:
            raise _invalid("variables", "must be a JSON object") from None
    return values


def parse_request(content_type: str, body: bytes, *, max_image_bytes: int) -> VisionRequest:
    """Parses a JSON or multipart/form-data body; raises InvalidArgument (ImageTooLarge for 413)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        form = parse_form(content_type, body, max_file_bytes=max_image_bytes)
        if len(form.files) > 1:
            raise _invalid("image", "send one image file per request", "IMAGE_REQUIRED")
        image = None
        for part in form.files.values():
            image = check_image(part.data, max_image_bytes)
        return _build(_form_values(form.fields), image, max_image_bytes)
    if media_type not in ("application/json", ""):
        raise InvalidArgument(
            f"unsupported content type {quoted(media_type)}: send application/json or multipart/form-data",
            reason="UNSUPPORTED_MEDIA_TYPE",
        )
    values = json_object(body)
    return _build(values, None, max_image_bytes)
