"""A hosted app's snapshot (edge/static.py) and the edge routes that serve it (edge/app_routes.py).

What Envoy answers with these routes is tested through the real edge in tests/e2e/test_app_serving.py; here,
what goes into a snapshot and what the rendered routes say.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import brotli  # type: ignore[import-untyped]
import pytest

from edge import static
from edge.app_routes import accepts, names_etag
from edge.envoy import LUA, RBAC
from edge.settings import read_settings
from edge.static import (
    CACHE_IMMUTABLE,
    CACHE_REVALIDATE,
    SnapshotError,
    SnapshotLimits,
    content_type,
    load_snapshot,
    take_snapshot,
    url_path,
)
from launcher.children import ChildFactory
from launcher.config import read_config
from services.common.config import ConfigError
from services.common.descriptors import default_descriptor_path
from tests.support.edge_config import BASE_ENV, EVERYTHING, rendered

TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
SCRIPT = 'console.log("a line of the app\'s code");\n' * 200
STYLE = "body { color: #123456; margin: 0 auto; }\n" * 60
INDEX = (
    '<!doctype html><html><head><script type="module" src="/assets/index-a1b2c3.js"></script></head>'
    '<body><div id="root"></div>' + "<p>filler text that compresses</p>" * 20 + "</body></html>"
)


def make_dist(root: Path) -> Path:
    """A small hand-made `dist/` as the Spark vite plugin writes one, with what must never be served."""
    dist = root / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "index-a1b2c3.js").write_text(SCRIPT)
    (dist / "assets" / "index-d4e5f6.css").write_text(STYLE)
    (dist / "assets" / "logo-0a1b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(600))
    (dist / "favicon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (dist / "proxy.js").write_text("// the plugin's node server")
    (dist / "package.json").write_text('{"scripts": {"start": "node proxy.js"}}')
    (dist / ".env").write_text("SECRET=1")
    (dist / ".git").mkdir()
    (dist / ".git" / "config").write_text("[core]")
    outside = root / "outside.txt"
    outside.write_text("not the app's")
    (dist / "leak.txt").symlink_to(outside)
    (dist / "dot-link.txt").symlink_to(dist / ".env")
    (dist / "alias.js").symlink_to(dist / "assets" / "index-a1b2c3.js")
    (dist / "linked-dir").symlink_to(root)
    (dist / "_spark").mkdir()
    (dist / "_spark" / "kv").write_text("[]")
    return dist


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    return make_dist(tmp_path)


@pytest.fixture
def snapshot(dist: Path, tmp_path: Path) -> static.StaticSite:
    return take_snapshot(dist, tmp_path / "snapshot", SnapshotLimits())


def _files(site: static.StaticSite) -> dict[str, static.StaticFile]:
    return {f.name: f for f in site.files}


# --- the snapshot ---


def test_a_snapshot_holds_the_apps_regular_files_and_nothing_else(snapshot: static.StaticSite, dist: Path) -> None:
    assert set(_files(snapshot)) == {
        "index.html",
        "favicon.svg",
        "alias.js",
        "assets/index-a1b2c3.js",
        "assets/index-d4e5f6.css",
        "assets/logo-0a1b.png",
    }
    root = snapshot.root
    tree = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".spark" not in p.parts}
    assert tree == set(_files(snapshot))
    assert not any(p.is_symlink() for p in root.rglob("*")), "copies, never links into the app"
    assert (root / "alias.js").read_text() == SCRIPT
    assert (root / "index.html").read_text() == (dist / "index.html").read_text()


def test_a_file_outside_is_not_served_even_when_the_app_links_to_it(snapshot: static.StaticSite) -> None:
    names = set(_files(snapshot))
    assert "leak.txt" not in names and "dot-link.txt" not in names
    assert not any(name.startswith("linked-dir") for name in names), "a symlinked directory is not followed"
    assert not any("not the app's" in p.read_text(errors="replace") for p in snapshot.root.rglob("*") if p.is_file())


def test_files_under_the_suites_paths_are_never_served(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    api = ("_spark/kv/x", "v1/models", "admin/keys", "runtime/a/kv", "healthz", "grpc.health.v1.Health/Check")
    for name in ("index.html", *api, "api/ok.json"):
        (dist / name).parent.mkdir(parents=True, exist_ok=True)
        (dist / name).write_text("{}")
    site = take_snapshot(dist, tmp_path / "snap", SnapshotLimits())
    assert set(_files(site)) == {"index.html", "api/ok.json"}


def test_content_types_by_extension() -> None:
    assert content_type("index.html") == "text/html; charset=utf-8"
    assert content_type("assets/index-1.js") == "text/javascript; charset=utf-8"
    assert content_type("assets/x.CSS") == "text/css; charset=utf-8"
    assert content_type("a.json") == content_type("a.js.map") == "application/json"
    assert content_type("logo.svg") == "image/svg+xml"
    assert content_type("font.woff2") == "font/woff2"
    assert content_type("m.wasm") == "application/wasm"
    assert content_type("site.webmanifest") == "application/manifest+json"
    assert content_type("README") == content_type("data.bin") == "application/octet-stream"


def test_text_worth_it_is_encoded_once_with_brotli_and_gzip(snapshot: static.StaticSite) -> None:
    script = _files(snapshot)["assets/index-a1b2c3.js"]
    assert [v.coding for v in script.variants] == ["br", "gzip", None]
    br, gz, identity = script.variants
    assert brotli.decompress(br.path.read_bytes()).decode() == SCRIPT
    assert gzip.decompress(gz.path.read_bytes()).decode() == SCRIPT
    assert identity.path.read_text() == SCRIPT
    assert br.size == br.path.stat().st_size < gz.size < identity.size
    # An image format that is compressed already, and a file too small to gain, are served as they are.
    files = _files(snapshot)
    assert [v.coding for v in files["assets/logo-0a1b.png"].variants] == [None]
    assert [v.coding for v in files["favicon.svg"].variants] == [None]


def test_an_encoding_that_saves_too_little_is_not_kept(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text(INDEX)
    (dist / "noise.js").write_bytes(os.urandom(4096))
    site = take_snapshot(dist, tmp_path / "snap", SnapshotLimits())
    assert [v.coding for v in _files(site)["noise.js"].variants] == [None]


def test_etags_are_strong_hashes_of_the_bytes_and_differ_per_encoding(snapshot: static.StaticSite) -> None:
    files = _files(snapshot)
    script = files["assets/index-a1b2c3.js"]
    tags = [v.etag for v in script.variants]
    assert all(re.fullmatch(r'"[0-9a-f]{32}(-br|-gz)?"', tag) for tag in tags)
    assert len(set(tags)) == 3
    assert tags[2] == '"' + hashlib.sha256(SCRIPT.encode()).hexdigest()[:32] + '"'
    # The same bytes under another name: the same tag.
    assert files["alias.js"].identity.etag == script.identity.etag


def test_cache_policy_immutable_assets_and_revalidated_pages(snapshot: static.StaticSite) -> None:
    files = _files(snapshot)
    assert files["assets/index-a1b2c3.js"].cache_control == CACHE_IMMUTABLE == "public, max-age=31536000, immutable"
    assert files["index.html"].cache_control == CACHE_REVALIDATE == "no-cache"
    assert files["favicon.svg"].cache_control == "no-cache"


def test_url_paths_are_encoded_as_browsers_send_them() -> None:
    assert url_path("assets/index-a1b2c3.js") == "/assets/index-a1b2c3.js"
    assert url_path("a b/ü.png") == "/a%20b/%C3%BC.png"
    assert url_path("q?#%.txt") == "/q%3F%23%25.txt"


def test_a_second_snapshot_replaces_the_first_and_reuses_unchanged_encodings(
    dist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "snapshot"
    take_snapshot(dist, target, SnapshotLimits())
    (dist / "favicon.svg").unlink()
    (dist / "assets" / "index-d4e5f6.css").write_text(STYLE + "p { margin: 0; }\n")

    encoded: list[int] = []
    original = static.encode

    def counting(coding: str, data: bytes, text: bool) -> bytes:
        encoded.append(len(data))
        return original(coding, data, text)

    monkeypatch.setattr(static, "encode", counting)
    site = take_snapshot(dist, target, SnapshotLimits())
    assert "favicon.svg" not in _files(site) and not (target / "favicon.svg").exists()
    # Only the changed stylesheet was encoded again (brotli and gzip).
    assert encoded == [len(STYLE) + len("p { margin: 0; }\n")] * 2
    assert load_snapshot(target) == site
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".snapshot")], "no temporary directory left"


@pytest.mark.parametrize(
    ("limits", "variable"),
    [
        (SnapshotLimits(max_files=3), "SPARK_APP_MAX_FILES=3"),
        (SnapshotLimits(max_bytes=1000), "SPARK_APP_MAX_BYTES=1,000"),
    ],
)
def test_an_app_over_a_limit_is_refused_naming_the_setting(
    dist: Path, tmp_path: Path, limits: SnapshotLimits, variable: str
) -> None:
    with pytest.raises(SnapshotError, match=re.escape(variable)) as raised:
        take_snapshot(dist, tmp_path / "snapshot", limits)
    assert f"SPARK_APP_DIR={dist}" in str(raised.value)
    assert not (tmp_path / "snapshot").exists()


def test_a_directory_that_is_no_build_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="is not a directory"):
        take_snapshot(tmp_path / "missing", tmp_path / "snap", SnapshotLimits())
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.tsx").write_text("")
    with pytest.raises(SnapshotError, match=r"no index\.html"):
        take_snapshot(tmp_path / "src", tmp_path / "snap", SnapshotLimits())


@pytest.mark.parametrize("where", [".", "snapshot", ".."])
def test_a_snapshot_never_replaces_the_app_itself(dist: Path, where: str) -> None:
    before = sorted(p.relative_to(dist) for p in dist.rglob("*"))
    with pytest.raises(SnapshotError, match="overlap"):
        take_snapshot(dist, dist / where, SnapshotLimits())
    assert sorted(p.relative_to(dist) for p in dist.rglob("*")) == before


def test_a_damaged_snapshot_is_refused(snapshot: static.StaticSite) -> None:
    next(v for f in snapshot.files for v in f.variants if v.coding).path.unlink()
    with pytest.raises(SnapshotError, match="SPARK_APP_SNAPSHOT"):
        load_snapshot(snapshot.root)
    with pytest.raises(SnapshotError, match="not an app snapshot"):
        load_snapshot(snapshot.root / "assets")


# --- choosing a variant ---


@pytest.mark.parametrize(
    ("header", "coding", "accepted"),
    [
        ("gzip, deflate, br, zstd", "br", True),
        ("gzip, deflate, br, zstd", "gzip", True),
        ("br", "br", True),
        ("BR;q=0.5", "br", True),
        ("gzip;q=1.0, br;q=0", "br", False),
        ("gzip;q=1.0, br;q=0", "gzip", True),
        ("br;q=0.000", "br", False),
        ("br ; q=0.001", "br", True),
        ("x-gzip", "gzip", False),
        ("gzipped", "gzip", False),
        ("identity", "br", False),
        ("", "gzip", False),
    ],
)
def test_an_encoding_is_chosen_only_when_the_client_accepts_it(header: str, coding: str, accepted: bool) -> None:
    # RE2 (Envoy's regex engine) and Python agree on this subset; Envoy matches the whole value.
    assert (re.fullmatch(accepts(coding), header) is not None) is accepted


@pytest.mark.parametrize(
    ("header", "matched"),
    [('"abc-br"', True), ('W/"abc-br"', True), ('"x", "abc-br"', True), ("*", True), ('"abc"', False), ("", False)],
)
def test_a_304_answers_only_the_etag_it_has(header: str, matched: bool) -> None:
    assert (re.fullmatch(names_etag('"abc-br"'), header) is not None) is matched


# --- the edge's routes ---


def _routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    listener = config["static_resources"]["listeners"][0]
    return list(
        listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    )


def _app_env(snapshot: static.StaticSite, **extra: str) -> dict[str, str]:
    return {**BASE_ENV, "SPARK_APP_SNAPSHOT": str(snapshot.root), **extra}


def test_each_file_has_a_304_and_a_200_route_per_variant_best_encoding_first(snapshot: static.StaticSite) -> None:
    routes = _routes(rendered(_app_env(snapshot)))
    script = _files(snapshot)["assets/index-a1b2c3.js"]
    mine = [r for r in routes if r["match"].get("path") == script.url_path]
    assert [r["direct_response"]["status"] for r in mine] == [304, 200, 304, 200, 304, 200]
    for route in mine:
        assert route["typed_per_filter_config"][TRANSCODER]["disabled"] is True
        headers = {h["name"]: h["string_match"] for h in route["match"]["headers"]}
        assert headers[":method"] == {"safe_regex": {"regex": "GET|HEAD"}}
    br_304, br, gz_304, _, _, plain = mine
    added = {h["header"]["key"]: h["header"]["value"] for h in br["response_headers_to_add"]}
    assert added == {
        "content-type": "text/javascript; charset=utf-8",
        "content-encoding": "br",
        "etag": script.variants[0].etag,
        "cache-control": CACHE_IMMUTABLE,
        "vary": "Accept-Encoding",
    }
    assert br["direct_response"]["body"] == {"filename": str(script.variants[0].path)}
    assert {h["name"] for h in plain["match"]["headers"]} == {":method"}
    assert "content-encoding" not in {h["header"]["key"] for h in plain["response_headers_to_add"]}
    not_modified = {h["header"]["key"]: h["header"]["value"] for h in gz_304["response_headers_to_add"]}
    assert not_modified == {
        "etag": script.variants[1].etag,
        "cache-control": CACHE_IMMUTABLE,
        "vary": "Accept-Encoding",
    }
    assert "body" not in gz_304["direct_response"] and gz_304["response_headers_to_remove"] == ["location"]
    assert {h["name"] for h in br_304["match"]["headers"]} == {":method", "accept-encoding", "if-none-match"}


def test_the_files_come_first_and_the_client_routes_after_every_api_route(snapshot: static.StaticSite) -> None:
    routes = _routes(rendered(_app_env(snapshot, SPARK_EDGE_UPSTREAMS=EVERYTHING)))
    names = [r["name"] for r in routes]
    assert names[0] == "app-status"
    files = [i for i, n in enumerate(names) if n.startswith("app-file")]
    assert files == list(range(1, len(files) + 1)), "no file is at an API path: they need not wait for the API's"
    last_api = max(i for i, r in enumerate(routes) if "route" in r)
    tail = names[last_api + 1 :]
    unrouted = [r for r in routes[last_api + 1 :] if r["name"].startswith("api-unrouted-")]
    assert tail == [
        *(r["name"] for r in unrouted),
        "app-assets-missing",
        *(f"app-client-route{v}" for v in ("-br-304", "-br", "-gzip-304", "-gzip", "-304", "")),
    ]
    assert routes[-1]["match"]["prefix"] == "/" and routes[-1]["direct_response"]["body"] == {
        "filename": str(snapshot.index.identity.path)
    }

    def unrouted_match(path: str) -> bool:
        for route in unrouted:
            assert TRANSCODER not in route.get("typed_per_filter_config", {}), "the transcoder's own 404 answers"
            exact, prefix = route["match"].get("path"), route["match"].get("path_separated_prefix")
            if path == exact or (prefix and (path == prefix or path.startswith(prefix + "/"))):
                return True
        return False

    api = ("/_spark/nothing", "/_spark", "/v1/x", "/admin/y", "/runtime/a/b", "/healthz", "/about")
    for path in (*api, "/grpc.health.v1.Health/Check", "/spark.kv.v1.KvService/GetValue"):
        assert unrouted_match(path), path
    for path in ("/", "/some/page", "/v1x", "/_sparkle", "/assets/x.js", "/spark.kv.v1.KvServiceX"):
        assert not unrouted_match(path), path
    # `/` and `/index.html` answer the index, as does any client-side route.
    index_routes = [r for r in routes if r["match"].get("path") in ("/", "/index.html")]
    assert len(index_routes) == 12


def test_the_status_route_names_the_app(snapshot: static.StaticSite) -> None:
    for env, name in ((BASE_ENV, "default"), (_app_env(snapshot, SPARK_APP_NAME="my-app"), "my-app")):
        status = _routes(rendered(env))[0]
        assert status["match"]["path"] == "/_spark/status"
        body = json.loads(status["direct_response"]["body"]["inline_string"])
        assert body == {"status": "complete", "runtimePermanentName": name}


def test_direct_responses_may_be_as_large_as_the_largest_file(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "big.png").write_bytes(os.urandom(3 * 1024 * 1024))
    site = take_snapshot(dist, tmp_path / "snap", SnapshotLimits())
    route_config = rendered(_app_env(site))["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    limit = route_config["typed_config"]["route_config"]["max_direct_response_body_size_bytes"]
    assert limit == 3 * 1024 * 1024
    without = rendered(BASE_ENV)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    assert without["typed_config"]["route_config"]["max_direct_response_body_size_bytes"] == 4096


@pytest.mark.parametrize("access", ["signed-in", "owners"])
def test_page_loads_of_an_app_that_needs_a_session_go_to_the_access_service(
    snapshot: static.StaticSite, access: str
) -> None:
    routes = _routes(rendered(_app_env(snapshot, SPARK_APP_ACCESS=access)))
    pages = [r for r in routes if "route" in r and r["name"].startswith("app-")]
    assert [r["match"].get("path", r["match"].get("prefix")) for r in pages] == ["/", "/index.html", "/"]
    for page in pages:
        assert page["route"]["cluster"] == "access"
        source = page["typed_per_filter_config"][LUA]["config"]["source_code"]["inline_string"]
        assert '"/_spark/auth/page?path=" .. escape(' in source
    assert pages[-1]["name"] == "app-client-route" and routes[-1] is pages[-1]
    first_api = next(i for i, r in enumerate(routes) if r["name"] == "spark-kv")
    assert routes.index(pages[1]) < first_api, "the pages are files: before the API's routes"
    # The other files stay Envoy's own, public answers.
    assert any(r["match"].get("path") == "/assets/index-a1b2c3.js" and "direct_response" in r for r in routes)


def test_in_keys_mode_the_apps_files_need_no_credential(snapshot: static.StaticSite) -> None:
    routes = _routes(rendered(_app_env(snapshot, SPARK_ACCESS_MODE="keys", SPARK_EDGE_UPSTREAMS=EVERYTHING)))
    app = [r for r in routes if r["name"].startswith(("app-", "api-unrouted-"))]
    assert app and not [r["name"] for r in app if RBAC in r.get("typed_per_filter_config", {})]
    assert RBAC in next(r for r in routes if r["name"] == "spark-kv")["typed_per_filter_config"]


@pytest.mark.parametrize(("access", "anonymous"), [("public", True), ("signed-in", False), ("owners", False)])
def test_in_keys_mode_a_public_apps_calls_may_come_without_a_credential(access: str, anonymous: bool) -> None:
    """An anonymous visitor of a public app with sign-in calls /_spark/* with no credential: the services admit
    them (with per-address limits), so the edge must not refuse them first; every other route still needs one."""
    env = {
        "SPARK_EDGE_UPSTREAMS": EVERYTHING,
        "SPARK_ACCESS_MODE": "keys",
        "SPARK_AUTH": "github",
        "SPARK_APP_ACCESS": access,
        "SPARK_OWNERS": "octocat",
    }
    routes = {r["name"]: r for r in _routes(rendered(env))}
    checked = {name for name, route in routes.items() if RBAC in route.get("typed_per_filter_config", {})}
    app_calls = {"spark-kv", "spark-db", "spark-user", "spark-loaded", "spark-llm"}
    assert app_calls.isdisjoint(checked) is anonymous
    assert {f"{name}-head" for name in app_calls if f"{name}-head" in routes}.isdisjoint(checked) is anonymous
    assert {"llm-chat", "prompts", "admin-keys", "runtime-kv"} <= checked
    without_sign_in = {k: v for k, v in env.items() if k not in ("SPARK_AUTH", "SPARK_APP_ACCESS", "SPARK_OWNERS")}
    assert RBAC in {r["name"]: r for r in _routes(rendered(without_sign_in))}["spark-kv"]["typed_per_filter_config"]


# --- settings ---


def test_the_edge_snapshots_spark_app_dir_itself_when_run_alone(dist: Path, tmp_path: Path) -> None:
    target = tmp_path / "edge-snapshot"
    env = {**BASE_ENV, "SPARK_APP_DIR": str(dist), "SPARK_APP_SNAPSHOT": str(target)}
    settings = read_settings(default_descriptor_path(), env)
    assert settings.app is not None and settings.app.root == target.resolve()
    assert (target / "index.html").is_file()


def test_the_apps_settings_are_checked_with_the_others(dist: Path, tmp_path: Path) -> None:
    env = {
        "SPARK_EDGE_UPSTREAMS": "kv=127.0.0.1:1,meta=127.0.0.1:2",
        "SPARK_APP_DIR": str(dist),
        "SPARK_APP_SNAPSHOT": str(tmp_path / "snap"),
        "SPARK_APP_ACCESS": "owners",
        "SPARK_APP_MAX_FILES": "2",
        "SPARK_EDGE_PORT": "x",
    }
    with pytest.raises(ConfigError) as raised:
        read_settings(default_descriptor_path(), env)
    problems = "\n".join(raised.value.problems)
    assert "SPARK_EDGE_PORT" in problems and "SPARK_APP_MAX_FILES=2" in problems
    with pytest.raises(ConfigError, match="SPARK_EDGE_UPSTREAMS must name it"):
        read_settings(default_descriptor_path(), {**env, "SPARK_APP_MAX_FILES": "100", "SPARK_EDGE_PORT": "1"})
    with pytest.raises(ConfigError, match="SPARK_APP_ACCESS='everyone' is not one of public, signed-in, owners"):
        read_settings(default_descriptor_path(), {**BASE_ENV, "SPARK_APP_ACCESS": "everyone"})


def test_the_launcher_snapshots_into_its_run_directory_and_tells_every_child(dist: Path, tmp_path: Path) -> None:
    (dist.parent / "runtime.config.json").write_text('{"app": "from-config"}')
    environ = {"SPARK_APP_DIR": str(dist), "SPARK_DATA_DIR": str(tmp_path / "data"), "SPARK_EDGE_PORT": "0"}
    config = read_config(environ)
    assert config.app_dir == dist and config.app_snapshot == tmp_path / "data" / "edge" / "app"
    assert config.app_name == "from-config"
    assert config.app_snapshot is not None
    take_snapshot(config.app_dir, config.app_snapshot, config.app_limits)
    factory = ChildFactory(config, environ)
    access = factory.service(next(i for i in config.instances if i.service == "access"))
    assert access.env["SPARK_APP_SNAPSHOT"] == str(config.app_snapshot)
    assert access.env["SPARK_APP_NAME"] == "from-config"
    served = _routes(json.loads(factory.render_edge().read_text()))
    assert served[0]["direct_response"]["body"]["inline_string"].endswith('"runtimePermanentName":"from-config"}')
    assert any(r["match"].get("path") == "/assets/index-a1b2c3.js" for r in served)
    assert not read_config({"SPARK_DATA_DIR": str(tmp_path)}).app_snapshot


def test_the_launcher_refuses_a_wrong_access_setting_before_anything_starts() -> None:
    with pytest.raises(ConfigError, match="SPARK_APP_ACCESS"):
        read_config({"SPARK_APP_ACCESS": "nobody"})
