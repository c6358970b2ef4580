"""Hostile requests through the real edge, sent byte for byte: each is refused with a 4xx and a JSON error
body, or taken literally where the contract says so, never a 5xx; no process of the suite dies or restarts;
and nothing is stored that should not be.

"Stored" is checked against a snapshot of what a caller can see (keys and a value in the Spark KV, every
prompt, the cleanup rule, the API keys), taken before the first case: a refused request must leave it
as it was. A request taken literally (a key that merely looks like a path) must read back exactly, and is
deleted again. The suite runs on the embedded store and on Redis, with an admin token, small vision and
body limits so the size cases stay quick, and a local provider speaking OpenAI's protocol.

The prompts and vision APIs take no regular expression or other configuration from callers; the one
caller-supplied regex is the admin route `/admin/regex_cleanup`, covered below.
"""

from __future__ import annotations

import base64
import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import FAILED_KEY
from tests.fakes.providers import FakeProviderThread
from tests.support import raw_http
from tests.support.http import error_shape, read_error, wait_for
from tests.support.raw_http import Header, RawResponse
from tests.support.redis_server import RedisServer
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

TOKEN = "hostile-admin"
KIB = 1024
MIB = 1024 * KIB
VALUE_LIMIT = 256 * KIB
IMAGE_LIMIT = 64 * KIB
LLM_BODY_LIMIT = 2 * MIB
RESTORE_LIMIT = 2 * MIB
DEFAULT_BODY_LIMIT = MIB
# A database of its own on the session's Redis (the shared e2e fixtures count up from 1).
REDIS_DATABASE = 12

ADMIN: tuple[Header, ...] = (("X-Admin-Token", TOKEN),)
JSON: tuple[Header, ...] = (("Content-Type", "application/json"),)
TEXT: tuple[Header, ...] = (("Content-Type", "text/plain;charset=UTF-8"),)
BOUNDARY = "hostile-boundary"
FORM: tuple[Header, ...] = (("Content-Type", f"multipart/form-data; boundary={BOUNDARY}"),)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
PNG_B64 = base64.b64encode(PNG).decode()
BIG_PNG = PNG + bytes(IMAGE_LIMIT)
SEED_KEY = "hostile-seed"
SEED_VALUE = b'{"seed": true}'
DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
# Values an error would echo, past what gRPC trailers carry (8 KiB some of the time, 16 KiB always).
HUGE_NAME = "n" * 40 * KIB
HUGE_MODEL = "m" * 30_000
HUGE_FIELD = "f" * 200 * KIB


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _form(fields: dict[str, bytes], image: bytes | None = None) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
        for name, value in fields.items()
    ]
    if image is not None:
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'.encode()
            + b"Content-Type: image/png\r\n\r\n"
            + image
            + b"\r\n"
        )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


@dataclass(frozen=True, slots=True)
class Hostile:
    """One hostile request and what the edge must answer."""

    method: str | bytes
    target: str | bytes
    body: bytes | None = None
    headers: tuple[Header, ...] = ()
    status: int = 400
    # Taken literally: `GET kept` answers `kept_body` afterwards (then the test deletes it).
    kept: str | None = None
    kept_body: bytes = b"1"
    # Members the JSON answer must have (for requests that succeed).
    answer: dict[str, Any] | None = None
    # Envoy answers a request that claims to be gRPC in gRPC's way: 200, this grpc-status, no body.
    grpc_status: str | None = None


def _kv(key: str, body: bytes = b"1", headers: tuple[Header, ...] = ()) -> Hostile:
    """A KV write that the contract takes literally: the key is whatever it decodes to."""
    return Hostile("PUT", f"/_spark/kv/{key}", body, headers, status=200, kept=f"/_spark/kv/{key}", kept_body=body)


def _prompt(body: bytes) -> Hostile:
    return Hostile("POST", "/v1/prompts", body, JSON + ADMIN)


def _vision(body: dict[str, Any], path: str = "/v1/vision/analyze", status: int = 400) -> Hostile:
    return Hostile("POST", path, _json(body), JSON, status=status)


CASES = [
    # Invalid UTF-8 in bodies, keys, names and headers.
    pytest.param(Hostile("PUT", "/_spark/kv/hostile-utf8", b'"\xff\xfe"', TEXT), id="kv-value-not-utf8"),
    pytest.param(Hostile("PUT", "/_spark/kv/%FF%FE", b"1"), id="kv-key-not-utf8"),
    pytest.param(Hostile("PUT", "/_spark/kv/%ED%A0%80", b"1"), id="kv-key-encoded-surrogate"),
    pytest.param(Hostile("PUT", "/_spark/kv/hostile-utf8?collection=%FF", b"1"), id="kv-collection-not-utf8"),
    pytest.param(Hostile("GET", "/_spark/kv?collection=%C3%28"), id="kv-list-collection-not-utf8"),
    pytest.param(_prompt(b'{"namespace":"hostile","name":"bad\xff","text":"t"}'), id="prompt-name-not-utf8"),
    pytest.param(_prompt(b'{"namespace":"hostile","name":"sur\\ud800","text":"t"}'), id="prompt-lone-surrogate"),
    pytest.param(Hostile("GET", "/v1/prompts?namespace=%FF"), id="prompts-query-not-utf8"),
    pytest.param(
        Hostile("POST", "/v1/chat/completions", b'{"messages":[{"role":"user","content":"\xff"}]}', JSON),
        id="chat-not-utf8",
    ),
    pytest.param(
        Hostile(
            "POST", "/v1/vision/analyze", b'{"prompt":"\xc3\x28","image_base64":"' + PNG_B64.encode() + b'"}', JSON
        ),
        id="vision-not-utf8",
    ),
    pytest.param(Hostile("POST", "/_spark/loaded", b'{"url":"\xff","load_ms":1}', JSON), id="loaded-not-utf8"),
    pytest.param(
        Hostile("POST", "/admin/keys", b'{"user_id":"\xff","login":"x"}', JSON + ADMIN), id="api-key-user-not-utf8"
    ),
    pytest.param(
        Hostile("GET", "/admin/keys", headers=(("X-Admin-Token", b"\xff\xfe"),), status=401), id="admin-token-not-utf8"
    ),
    # Huge and many headers; header names and values a gRPC service would refuse.
    pytest.param(Hostile("GET", "/healthz", headers=(("X-Big", "a" * 10 * MIB),), status=431), id="header-10-mib"),
    pytest.param(
        Hostile("GET", "/healthz", headers=tuple((f"X-H{i}", "v") for i in range(200)), status=431), id="headers-200"
    ),
    pytest.param(Hostile("GET", "/_spark/kv/" + "a" * 70 * KIB, status=431), id="path-70-kib"),
    pytest.param(Hostile("GET", "/healthz", headers=(("X_Forged", "1"),)), id="header-underscore"),
    pytest.param(Hostile("GET", "/healthz", headers=(("X-Ctl", "a\x01b"),)), id="header-control-char"),
    pytest.param(_kv("hostile-big-header", headers=(("X-Big", "a" * 50 * KIB),)), id="header-50-kib-reaches-service"),
    pytest.param(
        Hostile("GET", "/v1/prompts?tag=" + "a" * 20 * KIB, status=200, answer={"items": []}),
        id="query-20-kib-reaches-service",
    ),
    pytest.param(
        _kv("hostile-header-names", headers=(("E!", "1"), ("rfbr~", ">"), ("%c`f", "q"))),
        id="header-names-grpc-refuses",
    ),
    pytest.param(_kv("hostile-bin-header", headers=(("X-Forged-Bin", "!!!"),)), id="header-bin-not-base64"),
    pytest.param(
        _kv("hostile-grpc-headers", headers=(("grpc-timeout", "soon"), ("grpc-encoding", "evil"))),
        id="headers-grpc-reserved",
    ),
    # Path traversal: dot segments (and backslashes, as separators) are resolved before routing, so they
    # cannot skip a check; an encoded slash is part of the key.
    pytest.param(
        Hostile("POST", "/_spark/kv/x/../../../admin/keys", b'{"user_id":"evil","login":"evil"}', JSON, status=401),
        id="kv-dotdot-to-admin-keys",
    ),
    pytest.param(
        Hostile("POST", "/_spark/kv/%2e%2e/%2e%2e/admin/keys", b'{"user_id":"evil","login":"evil"}', JSON, status=401),
        id="kv-encoded-dot-segments-to-admin-keys",
    ),
    pytest.param(Hostile("GET", "/_spark/kv/..", status=404), id="kv-dotdot-out-of-the-route"),
    pytest.param(Hostile("DELETE", "/v1/prompts/1/../../../admin/keys/1", status=401), id="prompt-dotdot-to-revoke"),
    pytest.param(_kv("..%2F..%2Fadmin%2Fkeys"), id="kv-encoded-slashes-are-the-key"),
    pytest.param(_kv("%2e%2e%2f%2e%2e%2fetc%2fpasswd"), id="kv-fully-encoded-traversal-is-the-key"),
    pytest.param(_kv("%252e%252e%252f"), id="kv-double-encoded-is-the-key"),
    pytest.param(
        Hostile(
            "POST", "/_spark/kv/x\\..\\..\\..\\admin\\keys", b'{"user_id":"evil","login":"evil"}', JSON, status=401
        ),
        id="kv-backslash-dotdot-to-admin-keys",
    ),
    pytest.param(
        _kv("regex_cleanup?collection=..%2Fprompts%3Aconfig", _json({"pattern": "x", "flags": "g"})),
        id="kv-collection-cannot-reach-prompts-config",
    ),
    pytest.param(Hostile("PUT", f"/_spark/kv/hostile-other?key={SEED_KEY}", b"1"), id="kv-key-overridden-by-query"),
    pytest.param(Hostile("GET", "/v1/prompts/..%2F..%2Fadmin%2Fkeys"), id="prompt-id-traversal"),
    # %00 in paths and values.
    pytest.param(Hostile("PUT", "/_spark/kv/a%00b", b"1"), id="kv-key-nul"),
    pytest.param(Hostile("GET", "/v1/prompts/1%00"), id="prompt-id-nul"),
    pytest.param(Hostile("PUT", "/_spark/kv/hostile-nul", b'"a\x00b"'), id="kv-value-raw-nul"),
    pytest.param(_kv("hostile-nul", b'"a\\u0000b"'), id="kv-value-escaped-nul-is-json"),
    pytest.param(_kv("hostile-nul?collection=a%00b"), id="kv-collection-nul-is-a-name"),
    # 100,000 levels of nesting.
    pytest.param(Hostile("PUT", "/_spark/kv/hostile-deep", DEEP_ARRAY, TEXT), id="kv-deep-array"),
    pytest.param(
        _prompt(b'{"namespace":"hostile","name":"deep","text":"t","tags":' + DEEP_ARRAY + b"}"), id="prompt-deep-array"
    ),
    pytest.param(_prompt(DEEP_OBJECT), id="prompt-deep-object"),
    pytest.param(Hostile("POST", "/v1/chat/completions", b'{"messages":' + DEEP_ARRAY + b"}", JSON), id="chat-deep"),
    pytest.param(Hostile("POST", "/v1/vision/analyze", b'{"variables":' + DEEP_OBJECT + b"}", JSON), id="vision-deep"),
    pytest.param(Hostile("POST", "/_spark/loaded", b'{"url":' + DEEP_ARRAY + b"}", JSON), id="loaded-deep"),
    pytest.param(
        Hostile("POST", "/v1/prompts:render", b'{"text":"x","variables":' + DEEP_OBJECT + b"}", JSON), id="render-deep"
    ),
    pytest.param(
        Hostile("POST", "/admin/restore", b'{"count":0,"prompts":' + DEEP_ARRAY + b"}", JSON + ADMIN), id="restore-deep"
    ),
    pytest.param(Hostile("POST", "/admin/keys", b'{"user_id":' + DEEP_ARRAY + b"}", JSON + ADMIN), id="api-key-deep"),
    pytest.param(
        Hostile("PUT", "/admin/regex_cleanup", b'{"pattern":' + DEEP_ARRAY + b"}", JSON + ADMIN), id="regex-deep"
    ),
    # Images over the limit, in every way one can be sent.
    pytest.param(
        _vision({"prompt": "x", "image_base64": base64.b64encode(BIG_PNG).decode()}, status=413),
        id="vision-image-over-limit",
    ),
    pytest.param(
        _vision(
            {"prompt": "x", "image_url": "data:image/png;base64," + base64.b64encode(BIG_PNG).decode()}, status=413
        ),
        id="vision-data-url-over-limit",
    ),
    pytest.param(
        Hostile("POST", "/v1/vision/analyze", _form({"prompt": b"x"}, BIG_PNG), FORM, status=413),
        id="vision-file-over-limit",
    ),
    pytest.param(
        _vision({"prompt": "x", "image_base64": base64.b64encode(BIG_PNG).decode()}, "/v1/vision/stream", status=413),
        id="vision-stream-image-over-limit",
    ),
    pytest.param(
        Hostile(
            "POST", "/v1/vision/analyze", b'{"prompt":"x","image_base64":"' + b"A" * 2 * MIB + b'"}', JSON, status=413
        ),
        id="vision-body-over-edge-limit",
    ),
    # Numbers past every limit.
    pytest.param(
        Hostile("POST", "/v1/chat/completions", _json({**CHAT, "max_tokens": 10**12}), JSON), id="chat-max-tokens-10e12"
    ),
    pytest.param(
        Hostile("POST", "/_spark/llm", _json({**CHAT, "max_tokens": 2**63}), JSON), id="spark-llm-max-tokens-2e63"
    ),
    pytest.param(
        Hostile("POST", "/v1/chat/completions", _json({**CHAT, "max_tokens": 2**31, "stream": True}), JSON),
        id="chat-stream-max-tokens-2e31",
    ),
    pytest.param(
        Hostile(
            "POST", "/v1/chat/completions", b'{"messages":[{"role":"user","content":"hi"}],"temperature":1e400}', JSON
        ),
        id="chat-temperature-overflow",
    ),
    pytest.param(_vision({"prompt": "x", "image_base64": PNG_B64, "max_tokens": 2**40}), id="vision-max-tokens-2e40"),
    pytest.param(
        _vision({"prompt": "x", "image_base64": PNG_B64, "max_tokens": 2**40}, "/v1/vision/stream"),
        id="vision-stream-max-tokens-2e40",
    ),
    pytest.param(
        Hostile("POST", "/v1/vision/analyze", _form({"prompt": b"x", "max_tokens": b"1099511627776"}, PNG), FORM),
        id="vision-form-max-tokens-2e40",
    ),
    pytest.param(_vision({"image_base64": PNG_B64, "prompt_id": 2**40}), id="vision-prompt-id-2e40"),
    pytest.param(
        _prompt(b'{"namespace":"hostile","name":"big","text":"t","version":2147483648}'), id="prompt-version-2e31"
    ),
    pytest.param(Hostile("GET", "/v1/prompts?limit=99999999999"), id="prompts-limit-overflow"),
    pytest.param(
        _vision({"prompt": "x", "image_base64": PNG_B64, "variables": {f"v{i}": "x" for i in range(65)}}),
        id="vision-too-many-variables",
    ),
    # The one caller-supplied regular expression (admin only).
    pytest.param(Hostile("PUT", "/admin/regex_cleanup", _json({"pattern": "("}), JSON + ADMIN), id="regex-unbalanced"),
    pytest.param(
        Hostile("PUT", "/admin/regex_cleanup", _json({"pattern": "(a+)+$"}), JSON + ADMIN), id="regex-nested-quantifier"
    ),
    pytest.param(
        Hostile("PUT", "/admin/regex_cleanup", _json({"pattern": "a", "flags": "xyz"}), JSON + ADMIN),
        id="regex-unknown-flags",
    ),
    pytest.param(
        Hostile("PUT", "/admin/regex_cleanup", _json({"pattern": "a" * 100_000}), JSON + ADMIN), id="regex-too-long"
    ),
    pytest.param(
        Hostile("PUT", "/admin/regex_cleanup", _json({"pattern": "a{4294967296}"}), JSON + ADMIN),
        id="regex-repeat-overflow",
    ),
    pytest.param(
        Hostile("PUT", "/admin/regex_cleanup", _json({"pattern": "[[:alpha:]]+"}), JSON + ADMIN),
        id="regex-read-differently-by-the-engines",
    ),
    # Input an error would echo, far over the size of gRPC's trailers (a 502, 503 or 429 when echoed whole).
    pytest.param(Hostile("GET", f"/v1/prompts/default?namespace={HUGE_NAME}"), id="prompts-default-namespace-40-kib"),
    pytest.param(Hostile("GET", f"/v1/prompts/default?lang={HUGE_NAME}"), id="prompts-default-lang-40-kib"),
    pytest.param(
        Hostile("POST", "/v1/prompts:render", _json({"default_for": {"namespace": HUGE_NAME}}), JSON),
        id="render-default-namespace-40-kib",
    ),
    pytest.param(
        Hostile("POST", "/v1/chat/completions", _json({**CHAT, "model": HUGE_MODEL}), JSON), id="chat-model-30000"
    ),
    pytest.param(
        Hostile("POST", "/v1/chat/completions", _json({**CHAT, "model": HUGE_MODEL, "stream": True}), JSON),
        id="chat-stream-model-30000",
    ),
    pytest.param(
        Hostile("POST", "/_spark/llm", _json({**CHAT, "model": HUGE_MODEL}), JSON), id="spark-llm-model-30000"
    ),
    pytest.param(
        Hostile("POST", "/v1/chat/completions", _json({**CHAT, HUGE_FIELD: 1}), JSON), id="chat-field-name-200-kib"
    ),
    pytest.param(_vision({"image_base64": PNG_B64, HUGE_FIELD: 1}), id="vision-field-name-200-kib"),
    pytest.param(
        _vision({"image_base64": PNG_B64, HUGE_FIELD: 1}, "/v1/vision/stream"), id="vision-stream-field-name-200-kib"
    ),
    pytest.param(_vision({"image_base64": PNG_B64, "namespace": HUGE_NAME}), id="vision-namespace-40-kib"),
    pytest.param(_vision({"image_base64": PNG_B64, "model": HUGE_MODEL}), id="vision-model-30000"),
    pytest.param(
        _vision({"prompt": "x", "image_base64": PNG_B64, "variables": {HUGE_FIELD: "v"}}),
        id="vision-variable-name-200-kib",
    ),
    pytest.param(
        Hostile("POST", "/v1/vision/analyze", _form({"prompt": b"x", "namespace": HUGE_NAME.encode()}, PNG), FORM),
        id="vision-form-namespace-40-kib",
    ),
    pytest.param(Hostile("GET", f"/v1/usage?start_day={HUGE_NAME}", headers=ADMIN), id="usage-day-40-kib"),
    pytest.param(Hostile("GET", f"/v1/prompts/{HUGE_NAME}"), id="prompt-id-40-kib"),
    pytest.param(Hostile("GET", f"/v1/prompts?{HUGE_NAME}=1"), id="prompts-query-name-40-kib"),
    pytest.param(Hostile("GET", f"/v1/{HUGE_NAME}", status=404), id="unknown-path-40-kib"),
    # Bodies that are not JSON on routes whose body the transcoder reads as JSON: its parser takes single
    # quotes, unquoted keys, trailing commas and nothing at all.
    pytest.param(Hostile("POST", "/_spark/loaded", b"{'a':1,}", JSON), id="loaded-single-quotes"),
    pytest.param(Hostile("POST", "/_spark/loaded", b'{"url":"x","load_ms":1,}', TEXT), id="loaded-trailing-comma"),
    pytest.param(Hostile("POST", "/_spark/loaded", b"", JSON), id="loaded-empty"),
    pytest.param(Hostile("POST", "/_spark/loaded", b"{url:'x'}"), id="loaded-unquoted"),
    pytest.param(
        Hostile("POST", "/_spark/loaded", b'{"url":"http://app.example/","load_ms":12}', TEXT, status=200),
        id="loaded-as-the-runtime-sends-it",
    ),
    pytest.param(_prompt(b"{namespace:'hostile',name:'lenient',text:'t'}"), id="prompt-unquoted-keys"),
    pytest.param(Hostile("PUT", "/admin/regex_cleanup", b"{'pattern':'x',}", JSON + ADMIN), id="regex-single-quotes"),
    pytest.param(
        Hostile("POST", "/admin/keys", b'{"user_id":"u","login":"l",}', JSON + ADMIN), id="api-key-trailing-comma"
    ),
    pytest.param(
        _prompt(_json({"namespace": "hostile", "name": "tags", "text": "t", "tags": ["a"] * 100_000})),
        id="prompt-500-kib-json-is-checked-not-refused-as-too-large",
    ),
    # Forged identity and admin credentials.
    pytest.param(
        Hostile(
            "GET",
            "/_spark/user",
            headers=(("X-Spark-User", "evil"),),
            status=200,
            answer={"id": "owner", "login": "owner"},
        ),
        id="forged-user-header",
    ),
    pytest.param(
        _kv("hostile-real", headers=(("X-Envoy-Original-Path", f"/_spark/kv/{SEED_KEY}"),)), id="forged-original-path"
    ),
    pytest.param(
        Hostile(
            "POST",
            "/v1/prompts",
            _json({"namespace": "hostile", "name": "n", "text": "t"}),
            (*JSON, ("X-Admin-Token", "guess")),
            status=401,
        ),
        id="wrong-admin-token",
    ),
    pytest.param(
        Hostile(
            "POST",
            f"/v1/prompts?x-admin-token={TOKEN}",
            _json({"namespace": "hostile", "name": "n", "text": "t"}),
            JSON,
            # The service checks the token, in headers only; the transcoder refuses the unknown query
            # parameter before the call gets there.
            status=400,
        ),
        id="admin-token-in-query",
    ),
    pytest.param(
        Hostile("GET", "/admin/keys", headers=(("Authorization", f"Bearer {TOKEN}"),), status=401),
        id="admin-token-as-bearer",
    ),
    # Bodies over the route's limit.
    pytest.param(
        Hostile("PUT", "/_spark/kv/hostile-big", b'"' + b"a" * VALUE_LIMIT + b'"', TEXT, status=413),
        id="kv-value-over-limit",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/v1/prompts",
            b'{"namespace":"hostile","name":"big","text":"' + b"a" * DEFAULT_BODY_LIMIT + b'"}',
            JSON + ADMIN,
            status=413,
        ),
        id="prompt-over-limit",
    ),
    pytest.param(
        Hostile("POST", "/_spark/loaded", b'{"url":"' + b"a" * 5 * MIB + b'"}', JSON, status=413), id="loaded-5-mib"
    ),
    pytest.param(
        Hostile(
            "POST",
            "/v1/prompts",
            b'{"namespace":"hostile","name":"tags","text":"t","tags":[' + b'"a",' * (5 * MIB) + b'"a"]}',
            JSON + ADMIN,
            status=413,
        ),
        id="prompt-tags-20-mib",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/v1/chat/completions",
            b'{"messages":[{"role":"user","content":"' + b"a" * LLM_BODY_LIMIT + b'"}]}',
            JSON,
            status=413,
        ),
        id="chat-over-limit",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/admin/restore",
            b'{"count":0,"prompts":[],"exported_at":"' + b"a" * RESTORE_LIMIT + b'"}',
            JSON + ADMIN,
            status=413,
        ),
        id="restore-over-limit",
    ),
    # Wrong content types.
    pytest.param(
        Hostile("POST", "/v1/vision/analyze", b"<image/>", (("Content-Type", "application/xml"),)), id="vision-xml"
    ),
    pytest.param(
        Hostile("POST", "/v1/vision/analyze", b"--x\r\n", (("Content-Type", "multipart/form-data"),)),
        id="vision-multipart-without-boundary",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/v1/vision/analyze",
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a"\r\n\r\nunterminated'.encode(),
            FORM,
        ),
        id="vision-multipart-truncated",
    ),
    pytest.param(Hostile("POST", "/v1/chat/completions", _form({"model": b"x"}), FORM), id="chat-multipart"),
    pytest.param(
        Hostile(
            "POST",
            "/v1/prompts",
            b"namespace=hostile&name=form&text=t",
            (("Content-Type", "application/x-www-form-urlencoded"), *ADMIN),
        ),
        id="prompt-form-urlencoded",
    ),
    pytest.param(
        Hostile("POST", "/v1/prompts", b"<prompt/>", (("Content-Type", "application/xml"), *ADMIN)), id="prompt-xml"
    ),
    pytest.param(
        Hostile(
            "POST",
            "/v1/prompts",
            b'{"namespace":"hostile","name":"lat\xe9","text":"t"}',
            (("Content-Type", "application/json; charset=latin1"), *ADMIN),
        ),
        id="prompt-latin1",
    ),
    pytest.param(Hostile("PUT", "/_spark/kv/hostile-png", PNG, (("Content-Type", "image/png"),)), id="kv-png"),
    pytest.param(
        Hostile(
            "POST",
            "/_spark/kv/hostile-grpc",
            b"1",
            (("Content-Type", "application/grpc"),),
            status=200,
            grpc_status="12",
        ),
        id="kv-claims-to-be-grpc",
    ),
    # Methods no route has.
    pytest.param(Hostile("PATCH", "/v1/prompts/1", b"{}", JSON + ADMIN, status=404), id="patch-prompt"),
    pytest.param(Hostile("TRACE", "/healthz", status=404), id="trace"),
    pytest.param(Hostile("FOO", "/healthz"), id="unknown-method"),
    pytest.param(Hostile("get", "/healthz"), id="lowercase-method"),
    pytest.param(Hostile("GET", "/v1/chat/completions", status=404), id="get-chat"),
    pytest.param(Hostile("DELETE", "/_spark/user", status=404), id="delete-user"),
    pytest.param(Hostile("PUT", "/v1/models", b"{}", JSON, status=404), id="put-models"),
    pytest.param(Hostile("POST", "/_spark/kv", b"1", status=404), id="post-kv-without-key"),
    pytest.param(Hostile("HEAD", f"/_spark/kv/{SEED_KEY}", status=200), id="head-kv"),
    pytest.param(Hostile("HEAD", "/_spark/kv/hostile-absent", status=404), id="head-kv-absent"),
    pytest.param(Hostile("HEAD", "/v1/chat/completions", status=404), id="head-post-only-route"),
    pytest.param(Hostile("CONNECT", "127.0.0.1:22", status=404), id="connect"),
    pytest.param(Hostile("DELETE", "/v1/prompts", status=404), id="delete-every-prompt"),
    # Request smuggling.
    pytest.param(
        Hostile(
            "PUT",
            "/_spark/kv/hostile-te",
            b"1\r\n1\r\n0\r\n\r\n",
            (("Transfer-Encoding", "chunked"), ("Content-Length", "3")),
        ),
        id="chunked-and-content-length",
    ),
    pytest.param(
        Hostile("PUT", "/_spark/kv/hostile-cl", b"12", (("Content-Length", "1"), ("Content-Length", "2"))),
        id="two-content-lengths",
    ),
]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def suite(
    request: pytest.FixtureRequest, fake: FakeProviderThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningSuite]:
    env = {
        "ADMIN_TOKEN": TOKEN,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.openai_base_url,
        "SPARK_KV_MAX_VALUE_BYTES": str(VALUE_LIMIT),
        "SPARK_VISION_MAX_IMAGE_BYTES": str(IMAGE_LIMIT),
        "SPARK_EDGE_MAX_LLM_BODY_BYTES": str(LLM_BODY_LIMIT),
        "SPARK_PROMPTS_RESTORE_MAX_BYTES": str(RESTORE_LIMIT),
    }
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        env["REDIS_URL"] = f"{server.url.rsplit('/', 1)[0]}/{REDIS_DATABASE}"
    running = RunningSuite.start(tmp_path_factory.mktemp(f"suite-hostile-{request.param}"), env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def admin(suite: RunningSuite) -> Iterator[httpx.Client]:
    """A client for seeding, snapshots and clean-up (not for the hostile requests themselves)."""
    with httpx.Client(base_url=suite.base_url, headers=dict(ADMIN), timeout=30.0) as client:
        yield client


def _snapshot(admin: httpx.Client) -> dict[str, Any]:
    """What a caller can see of the stored state."""
    assert admin.get("/healthz").status_code == 200, "the suite is not healthy"
    seed = admin.get(f"/_spark/kv/{SEED_KEY}")
    rule = admin.get("/admin/regex_cleanup").json()
    return {
        "keys": admin.get("/_spark/kv").json(),
        "seed": (seed.status_code, seed.content),
        "prompts": admin.get("/v1/prompts", params={"limit": 100}).json()["items"],
        "rule": {"pattern": rule["pattern"], "flags": rule["flags"]},
        "api_keys": admin.get("/admin/keys").json(),
    }


@pytest.fixture(scope="module")
def baseline(admin: httpx.Client) -> dict[str, Any]:
    """The state every case must leave behind: one KV value and one prompt that nothing may touch."""
    assert admin.put(f"/_spark/kv/{SEED_KEY}", content=SEED_VALUE).status_code == 200
    created = admin.post("/v1/prompts", json={"namespace": "hostile", "name": "seed", "text": "seed"})
    assert created.status_code == 201, created.text
    return _snapshot(admin)


def _restore(admin: httpx.Client, baseline: dict[str, Any]) -> None:
    """Undoes whatever a failed case stored, so that one bug does not fail every later case."""
    now = _snapshot(admin)
    for key in set(now["keys"]) - set(baseline["keys"]):
        admin.delete(f"/_spark/kv/{quote(key, safe='')}")
    if now["seed"] != baseline["seed"]:
        admin.put(f"/_spark/kv/{SEED_KEY}", content=SEED_VALUE)
    for prompt in now["prompts"]:
        if prompt["id"] not in {p["id"] for p in baseline["prompts"]}:
            admin.delete(f"/v1/prompts/{prompt['id']}")
    if now["rule"] != baseline["rule"]:
        admin.put("/admin/regex_cleanup", json=baseline["rule"])
    for key in now["api_keys"].get("keys", []):
        if key not in baseline["api_keys"].get("keys", []):
            admin.delete(f"/admin/keys/{key['id']}")


@pytest.fixture
def children(suite: RunningSuite, request: pytest.FixtureRequest) -> Iterator[dict[str, int]]:
    """The suite's processes before the test; the logs are printed if the test fails."""
    yield suite.child_pids()
    if request.node.stash.get(FAILED_KEY, False):
        sys.stderr.write(suite.logs())


def _check_answer(case: Hostile, response: RawResponse) -> None:
    shown = f"{response.status} {response.headers} {response.body[:400]!r}"
    assert response.status == case.status, shown
    if case.grpc_status is not None:
        assert response.headers.get("grpc-status") == case.grpc_status, shown
        return
    if case.method == "HEAD":
        return
    assert response.headers.get("content-type", "").startswith("application/json"), shown
    body = response.json()
    if case.status >= 400:
        read_error(response.status, body, error_shape(case.target))
    if case.answer is not None:
        assert body.items() >= case.answer.items(), shown


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_request_is_refused_or_taken_literally(
    case: Hostile,
    suite: RunningSuite,
    admin: httpx.Client,
    baseline: dict[str, Any],
    children: dict[str, int],
) -> None:
    response = raw_http.send(suite.edge_address, case.method, case.target, case.headers, case.body)
    try:
        _check_answer(case, response)
        if case.kept is not None:
            stored = raw_http.send(suite.edge_address, "GET", case.kept)
            assert (stored.status, stored.body) == (200, case.kept_body), "a literal key did not read back"
            assert raw_http.send(suite.edge_address, "DELETE", case.kept).status == 200
        assert _snapshot(admin) == baseline, "the request changed what is stored"
    finally:
        _restore(admin, baseline)
    assert suite.process.poll() is None, "the launcher exited"
    assert suite.child_pids() == children, "a process of the suite died and was restarted"


def test_a_forged_user_is_neither_trusted_nor_charged(
    suite: RunningSuite, admin: httpx.Client, children: dict[str, int]
) -> None:
    """A client's `x-spark-user` names nobody: the edge removes it, and services believe it only next to the
    suite's internal token."""

    def requests_of(caller: str) -> int:
        records = admin.get("/v1/usage", params={"caller": caller}).json()["records"]
        return sum(int(record["requests"]) for record in records)

    forged = f"evil-{uuid.uuid4().hex[:8]}"
    before = requests_of("owner")
    headers = (*JSON, ("X-Spark-User", forged))
    response = raw_http.send(suite.edge_address, "POST", "/v1/chat/completions", headers, _json(CHAT))
    assert response.status == 200, response.body[:400]
    assert wait_for(lambda: requests_of("owner") > before, timeout_s=30.0), "the completion was not charged"
    assert requests_of(forged) == 0
    assert suite.child_pids() == children


def test_a_forged_forwarded_for_is_not_taken_as_the_client(suite: RunningSuite) -> None:
    """The edge takes the client's address from the connection (the rate limits count by it)."""
    agent = f"hostile-{uuid.uuid4().hex}"
    headers = (("X-Forwarded-For", "203.0.113.7"), ("X-Real-IP", "203.0.113.8"), ("User-Agent", agent))
    assert raw_http.send(suite.edge_address, "GET", "/_spark/user", headers).status == 200
    log = suite.directory / "logs" / "edge-access.log"

    def logged() -> list[dict[str, Any]]:
        return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if agent in line]

    assert wait_for(lambda: bool(logged()), timeout_s=30.0), "the request was not logged"
    assert [line["client"] for line in logged()] == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("GET", f"/v1/prompts/default?namespace={HUGE_NAME}", None),
        ("POST", "/v1/chat/completions", _json({**CHAT, "model": HUGE_MODEL})),
        ("POST", "/v1/vision/analyze", _json({"image_base64": PNG_B64, HUGE_FIELD: 1})),
    ],
    ids=["namespace", "model", "vision-field-name"],
)
def test_an_echoed_value_is_cut_to_a_short_prefix(suite: RunningSuite, method: str, target: str, body: bytes) -> None:
    """The issue's three cases: a 400 naming the field, with a short prefix of the value at most."""
    response = raw_http.send(suite.edge_address, method, target, JSON if body else (), body)
    assert response.status == 400, response.body[:400]
    error = read_error(response.status, response.json(), error_shape(target))
    assert len(response.body) < 2 * KIB, response.body[:400]
    assert len(error.message.encode()) <= 1024
    assert error.field is not None, error
    assert len(error.field.encode()) <= 256


@pytest.mark.parametrize(
    ("method", "target", "body", "status"),
    [
        ("GET", f"/v1/prompts/{HUGE_NAME}", None, 400),
        ("GET", f"/v1/prompts?limit={HUGE_NAME}", None, 400),
        ("GET", f"/v1/prompts?{HUGE_NAME}=1", None, 400),
        ("GET", f"/v1/{HUGE_NAME}", None, 404),
        ("POST", "/_spark/loaded", _json({"url": "x", "load_ms": HUGE_NAME}), 400),
    ],
    ids=["id", "limit", "query-name", "path", "body-value"],
)
def test_the_edges_own_errors_do_not_repeat_a_long_value(
    suite: RunningSuite, method: str, target: str, body: bytes | None, status: int
) -> None:
    """The transcoder's messages repeat the value they refuse, whole; past 1 KiB of request the edge says less."""
    response = raw_http.send(suite.edge_address, method, target, JSON if body else (), body)
    assert response.status == status, response.body[:400]
    assert len(response.body) < KIB, response.body[:400]
    assert "too long to repeat" in response.json()["message"]
