"""The `/_spark/kv` and `/_spark/db` contract through the real Envoy edge, byte for byte."""

from __future__ import annotations

import json
import socket
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.conftest import VALUE_LIMIT
from tests.support.http import in_threads
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

TEXT = {"content-type": "text/plain;charset=UTF-8"}
ODD_KEYS = [
    "a/b c",
    "100%",
    "what?",
    "#hash",
    "q?x=1&y=2#frag",
    "é",
    "日本語のキー",
    "emoji 😀",
    "plus+sign",
    "back\\slash",
    "quote'\"",
    "tab\tnew\nline",
    "%2F-literal",
    "..x",
    "a//b",
    "/leading",
    "trailing/",
    "مرحبا",
]


def enc(key: str) -> str:
    """What the runtime sends: `encodeURIComponent(key)`."""
    return quote(key, safe="-_.!~*'()")


def assert_json_error(response: httpx.Response, status: int, fragment: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"code", "message", "details"}, body
    assert fragment in body["message"], body
    assert not [h for h in response.headers if h.startswith("grpc-")], response.headers
    return dict(body)


def test_healthz_reports_every_service(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "SERVING"
    assert [s["name"] for s in body["services"]] == ["access", "kv", "kv-2", "llm", "prompts", "vision"]
    assert {s["status"] for s in body["services"]} == {"SERVING"}
    # snake_case like the rest of the vision API, as docs/operations.md shows it.
    assert all(s["latency_ms"] > 0 and "latencyMs" not in s for s in body["services"]), body


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1}',
        '"just a string"',
        "42",
        "-0.5e-3",
        "null",
        "true",
        "[1,2,3]",
        ' { "spaced" : [ 1 , 2 ] } ',
        '"héllo 😀 مرحبا"',
        "{}",
        '""',
    ],
)
def test_value_round_trips_byte_for_byte(http: httpx.Client, text: str) -> None:
    key = "round-trip-" + str(abs(hash(text)))
    response = http.post(f"/_spark/kv/{key}", content=text.encode(), headers=TEXT)
    assert response.status_code == 200, response.text
    assert response.json()["written"] is True
    got = http.get(f"/_spark/kv/{key}", headers=TEXT)
    assert got.status_code == 200
    assert got.content == text.encode()
    assert got.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_keys_are_stored_and_listed_as_sent(http: httpx.Client, key: str) -> None:
    value = json.dumps({"key": key})
    assert http.put(f"/_spark/kv/{enc(key)}", content=value, headers=TEXT).status_code == 200
    assert http.get(f"/_spark/kv/{enc(key)}").content == value.encode()
    keys = http.get("/_spark/kv").json()
    assert key in keys


def test_key_listing_is_a_bare_array_of_the_default_collection(http: httpx.Client) -> None:
    http.post("/_spark/kv/listed", content="1", headers=TEXT)
    http.post("/_spark/kv/elsewhere?collection=other-list", content="1", headers=TEXT)
    response = http.get("/_spark/kv")
    assert response.status_code == 200
    keys = response.json()
    assert isinstance(keys, list)
    assert "listed" in keys
    assert "elsewhere" not in keys
    assert keys == sorted(keys)


def test_collections_list_key_and_json_text(http: httpx.Client) -> None:
    empty = http.get("/_spark/db/collections/never-used")
    assert empty.status_code == 200
    assert empty.content == b"[]"
    docs = {
        "01J0000000000000000000000A": {"title": "one", "done": False},
        "01J0000000000000000000000B": {"title": "two"},
    }
    for doc_id, doc in docs.items():
        assert (
            http.post(f"/_spark/kv/{doc_id}?collection=todos", content=json.dumps(doc), headers=TEXT).status_code == 200
        )
    listing = http.get("/_spark/db/collections/todos")
    assert listing.status_code == 200
    assert listing.json() == [{"key": k, "value": json.dumps(v)} for k, v in docs.items()]
    assert (
        http.get("/_spark/kv/01J0000000000000000000000A?collection=todos").json() == docs["01J0000000000000000000000A"]
    )
    assert http.get("/_spark/kv/01J0000000000000000000000A").status_code == 404


def test_initial_header_sets_only_if_absent(http: httpx.Client) -> None:
    first = http.post("/_spark/kv/initial", content='"first"', headers={**TEXT, "X-Spark-Initial": "true"})
    assert first.status_code == 200
    assert first.json()["written"] is True
    second = http.post("/_spark/kv/initial", content='"second"', headers={**TEXT, "X-Spark-Initial": "true"})
    assert second.status_code == 200
    assert second.json() == {"written": False, "versionstamp": first.json()["versionstamp"]}
    assert http.get("/_spark/kv/initial").content == b'"first"'
    overwrite = http.post("/_spark/kv/initial", content='"third"', headers={**TEXT, "X-Spark-Initial": "false"})
    assert overwrite.json()["written"] is True
    assert overwrite.json()["versionstamp"] > first.json()["versionstamp"]
    assert http.get("/_spark/kv/initial").content == b'"third"'


def test_delete_succeeds_whether_or_not_the_key_exists(http: httpx.Client) -> None:
    http.post("/_spark/kv/doomed?collection=c1", content="1", headers=TEXT)
    first = http.delete("/_spark/kv/doomed?collection=c1")
    assert first.status_code == 200
    assert first.json() == {"deleted": True}
    again = http.delete("/_spark/kv/doomed?collection=c1")
    assert again.status_code == 200
    assert again.json() == {"deleted": False}
    assert_json_error(http.get("/_spark/kv/doomed?collection=c1"), 404, "key not found")


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{bad", "Expecting property name"),
        (b"", "Expecting value"),
        (b"undefined", "Expecting value"),
        (b"NaN", "NaN"),
        (b'{"a":1} trailing', "Extra data"),
        (b"\xff\xfe", "UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
    ],
)
def test_invalid_json_is_refused_and_nothing_is_stored(http: httpx.Client, body: bytes, why: str) -> None:
    key = f"invalid-{abs(hash(body))}"
    error = assert_json_error(http.post(f"/_spark/kv/{key}", content=body, headers=TEXT), 400, why)
    assert error["code"] == 3
    assert http.get(f"/_spark/kv/{key}").status_code == 404


def test_value_at_the_limit_is_stored_and_one_byte_more_is_413(http: httpx.Client) -> None:
    exact = b'"' + b"x" * (VALUE_LIMIT - 2) + b'"'
    assert http.post("/_spark/kv/at-limit", content=exact, headers=TEXT).status_code == 200
    assert http.get("/_spark/kv/at-limit").content == exact
    over = b'"' + b"x" * (VALUE_LIMIT - 1) + b'"'
    assert_json_error(
        http.post("/_spark/kv/over-limit", content=over, headers=TEXT), 413, "exceeds the configured limit"
    )
    assert http.get("/_spark/kv/over-limit").status_code == 404
    assert_json_error(http.post("/_spark/kv/at-limit", content=over, headers=TEXT), 413, "limit")
    assert http.get("/_spark/kv/at-limit").content == exact


def test_key_limits(http: httpx.Client) -> None:
    assert_json_error(http.post("/_spark/kv/", content="1", headers=TEXT), 400, "key must not be empty")
    assert_json_error(http.get("/_spark/kv/"), 400, "key must not be empty")
    longest = "é" * 512
    assert http.post(f"/_spark/kv/{enc(longest)}", content="1", headers=TEXT).status_code == 200
    too_long = longest + "x"
    assert_json_error(
        http.post(f"/_spark/kv/{enc(too_long)}", content="1", headers=TEXT), 400, "over the limit of 1024 bytes"
    )
    assert too_long not in http.get("/_spark/kv").json()


def test_unknown_query_parameters_paths_and_methods_are_json_errors(http: httpx.Client) -> None:
    assert_json_error(http.get("/_spark/kv/x?colection=typo"), 400, "colection")
    assert_json_error(http.get("/nowhere"), 404, "/nowhere")
    assert_json_error(http.patch("/_spark/kv/x", content="1"), 404, "")
    assert_json_error(http.get("/_spark/db/collections/"), 404, "")


def test_errors_and_successes_leak_no_grpc_headers(http: httpx.Client) -> None:
    for response in (
        http.get("/healthz"),
        http.post("/_spark/kv/leak", content="1", headers=TEXT),
        http.get("/_spark/kv/leak"),
        http.get("/_spark/kv/absent-leak"),
        http.get("/_spark/kv"),
    ):
        assert not [h for h in response.headers if h.startswith("grpc-") or h == "x-http-status"], response.headers
        assert response.headers["x-content-type-options"] == "nosniff"


def test_cors_allows_only_configured_origins(http: httpx.Client) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-spark-initial",
    }
    allowed = http.options("/_spark/kv/x", headers={"Origin": "http://app.example", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://app.example"
    assert "x-spark-initial" in allowed.headers["access-control-allow-headers"]
    refused = http.options("/_spark/kv/x", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in refused.headers


def test_concurrent_writers_lose_and_tear_nothing(http: httpx.Client, suite: RunningSuite) -> None:
    big = "y" * 4096

    def write(client: httpx.Client, i: int) -> tuple[int, int]:
        value = json.dumps({"writer": i, "pad": big})
        distinct = client.post(f"/_spark/kv/writer-{i}?collection=concurrency", content=value, headers=TEXT)
        same = client.post("/_spark/kv/shared?collection=concurrency", content=value, headers=TEXT)
        return distinct.status_code, same.status_code

    statuses = in_threads(suite.base_url, write, range(100), workers=32)
    assert statuses == [(200, 200)] * 100
    entries = {e["key"]: json.loads(e["value"]) for e in http.get("/_spark/db/collections/concurrency").json()}
    assert len(entries) == 101
    for i in range(100):
        assert entries[f"writer-{i}"] == {"writer": i, "pad": big}
    assert entries["shared"]["pad"] == big
    assert 0 <= entries["shared"]["writer"] < 100


def test_path_fields_cannot_be_overridden_from_the_query(http: httpx.Client) -> None:
    http.post("/_spark/kv/kept", content="1", headers=TEXT)
    http.post("/_spark/kv/other", content="2", headers=TEXT)
    refused = "is part of the path and may not also be given as a query parameter"
    assert_json_error(http.delete("/_spark/kv/kept?key=other"), 400, refused)
    assert_json_error(http.delete("/_spark/kv/kept?k%65y=other"), 400, refused)
    assert_json_error(http.post("/_spark/kv/kept?key=other", content="3", headers=TEXT), 400, refused)
    assert_json_error(http.get("/_spark/kv/kept?key=other"), 400, refused)
    assert_json_error(http.get("/_spark/db/collections/todos?name=other"), 400, refused)
    assert http.delete(f"/_spark/kv/{enc('a/b')}?key=a%2Fb").status_code == 200
    assert http.get("/_spark/kv/kept").content == b"1"
    assert http.get("/_spark/kv/other").content == b"2"


@pytest.mark.parametrize(
    "path",
    ["/_spark/kv/%FF", "/_spark/kv/x?collection=%C3", "/_spark/db/collections/%FE%FF"],
)
def test_text_that_is_not_utf8_is_a_400(http: httpx.Client, path: str) -> None:
    assert_json_error(http.get(path), 400, "bad UTF-8")
    assert_json_error(http.post(path, content="1", headers=TEXT), 400 if "/kv/" in path else 404, "")


def test_nul_in_a_path_is_refused_by_the_edge(http: httpx.Client) -> None:
    response = assert_json_error(http.post("/_spark/kv/a%00b", content="1", headers=TEXT), 400, "encoded NUL")
    assert response["details"][0]["reason"] == "path_normalization_failed"  # type: ignore[index]


def test_grpc_content_type_on_an_http_route_is_unimplemented(http: httpx.Client) -> None:
    response = http.post("/_spark/kv/x", content=b"\0\0\0\0\0", headers={"content-type": "application/grpc"})
    assert response.headers["grpc-status"] == "12"
    assert http.get("/_spark/kv/x").status_code == 404


def test_admin_routes_are_closed_without_an_admin_token(http: httpx.Client) -> None:
    body = {"namespace": "n", "name": "x", "text": "t"}
    assert_json_error(http.post("/v1/prompts", json=body, headers={"X-Admin-Token": ""}), 403, "no ADMIN_TOKEN")
    assert_json_error(http.post("/admin/backup", headers={"X-Admin-Token": "guess"}), 403, "no ADMIN_TOKEN")


def _head_then_get(suite: RunningSuite, path: str) -> tuple[bytes, bytes]:
    """The raw answer to HEAD `path` and the bytes after it, on one connection with a GET pipelined behind:
    a HEAD answered with a body would have those bytes where the GET's status line belongs."""
    request = (
        f"HEAD {path} HTTP/1.1\r\nHost: edge\r\n\r\n"
        + "GET /healthz HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n"
    )
    host, port = suite.edge_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request.encode())
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


# /healthz reports latencies, so its length changes from one answer to the next.
@pytest.mark.parametrize(
    ("path", "same_length"),
    [
        ("/healthz", False),
        ("/about", True),
        ("/_spark/kv/head-probe", True),
        ("/v1/models", True),
        ("/_spark/kv/head-absent", True),
    ],
)
def test_head_answers_like_get_without_a_body(
    http: httpx.Client, suite: RunningSuite, path: str, same_length: bool
) -> None:
    """Monitors send HEAD; the transcoder knows only the protos' methods (it answered 404)."""
    assert http.put("/_spark/kv/head-probe", content='{"probe": true}', headers=TEXT).status_code == 200
    get = http.get(path)
    head, after = _head_then_get(suite, path)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    assert status_line == f"HTTP/1.1 {get.status_code} {get.reason_phrase}", head
    assert headers["content-type"] == get.headers["content-type"]
    assert int(headers["content-length"]) == len(get.content) if same_length else int(headers["content-length"]) > 0
    assert after.startswith(b"HTTP/1.1 200 OK\r\n"), after[:200]
    assert http.head(path).status_code == get.status_code


def test_responses_that_depend_on_origin_say_vary_origin(http: httpx.Client) -> None:
    """Access-Control-* headers follow the request's Origin (and its absence): a shared cache must not serve
    one origin's answer to another, nor a same-origin answer to a cross-origin request."""
    app, evil = {"Origin": "http://app.example"}, {"Origin": "http://evil.example"}
    preflight = {"Access-Control-Request-Method": "PUT", **app}
    for response in (
        http.get("/_spark/kv"),
        http.get("/_spark/kv", headers=app),
        http.get("/_spark/kv", headers=evil),
        http.get("/_spark/kv/vary-absent", headers=app),
        http.options("/_spark/kv/x", headers=preflight),
        http.head("/healthz"),
    ):
        assert "origin" in response.headers.get("vary", "").lower(), (
            response.request.method,
            response.headers,
        )
    assert http.get("/_spark/kv", headers=app).headers["access-control-allow-origin"] == "http://app.example"
