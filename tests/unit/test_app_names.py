"""The hosted app's name (services/common/app.py) and the `/runtime/{app}/...` routes that name apps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edge.routes import DIRECT_REPLIES, route_for_path
from services.common.app import (
    APP_HEADER,
    DEFAULT_APP,
    app_of_path,
    read_app_name,
    valid_app_name,
)
from services.common.config import ConfigError, EnvReader
from services.kv.repository import space_of

VALID = ["default", "a", "A", "0", "my-app", "my_app", "my.app", "-x", "_x", "x.", "a..b", "x" * 64, "Spark-App_2.0"]
INVALID = ["", ".hidden", ".", "..", "x" * 65, "a b", "a/b", "a:b", "{a}", "a}", "é", "a%20b", "a\nb", "a\x00b", "a?"]


@pytest.mark.parametrize("name", VALID)
def test_valid_names(name: str) -> None:
    assert valid_app_name(name)


@pytest.mark.parametrize("name", INVALID)
def test_invalid_names(name: str) -> None:
    assert not valid_app_name(name)


def test_the_constants() -> None:
    assert (APP_HEADER, DEFAULT_APP) == ("x-spark-app", "default")


def app_repository(tmp_path: Path, config: object | None) -> Path:
    """A Spark app's repository as `npm run build` leaves it: `runtime.config.json` beside `dist/`."""
    dist = tmp_path / "repo" / "dist"
    dist.mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html>", encoding="utf-8")
    if config is not None:
        text = config if isinstance(config, str) else json.dumps(config)
        (tmp_path / "repo" / "runtime.config.json").write_text(text, encoding="utf-8")
    return dist


def test_nothing_set_is_the_default_app() -> None:
    assert read_app_name({}) == "default"
    assert read_app_name({"SPARK_APP_NAME": "  "}) == "default"


def test_spark_app_name_wins(tmp_path: Path) -> None:
    dist = app_repository(tmp_path, {"app": "from-file"})
    assert read_app_name({"SPARK_APP_NAME": "chosen", "SPARK_APP_DIR": str(dist)}) == "chosen"
    assert read_app_name({"SPARK_APP_NAME": " chosen "}) == "chosen"


def test_the_app_of_runtime_config_json_in_the_parent_of_the_app_dir(tmp_path: Path) -> None:
    dist = app_repository(tmp_path, {"app": "spark-app-7f3a", "templateVersion": 1})
    assert read_app_name({"SPARK_APP_DIR": str(dist)}) == "spark-app-7f3a"
    assert read_app_name({"SPARK_APP_DIR": str(dist) + "/"}) == "spark-app-7f3a"


def test_a_runtime_config_json_inside_the_app_dir_is_not_read(tmp_path: Path) -> None:
    dist = app_repository(tmp_path, None)
    (dist / "runtime.config.json").write_text('{"app": "inside"}', encoding="utf-8")
    assert read_app_name({"SPARK_APP_DIR": str(dist)}) == "default"


@pytest.mark.parametrize("config", [None, {}, {"app": None}, {"other": "x"}])
def test_no_app_in_the_repository_is_the_default_app(tmp_path: Path, config: object) -> None:
    assert read_app_name({"SPARK_APP_DIR": str(app_repository(tmp_path, config))}) == "default"


def test_a_missing_app_dir_is_not_this_modules_concern(tmp_path: Path) -> None:
    assert read_app_name({"SPARK_APP_DIR": str(tmp_path / "nowhere" / "dist")}) == "default"


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"app": ".hidden"}, "'.hidden' of .* is not an app name"),
        ({"app": 42}, "the app 42 of .* is not a string"),
        ("{not json", "is not JSON"),
    ],
)
def test_a_runtime_config_json_that_names_no_valid_app_is_an_error(
    tmp_path: Path, config: object, problem: str
) -> None:
    dist = app_repository(tmp_path, config)
    with pytest.raises(ConfigError, match=problem):
        read_app_name({"SPARK_APP_DIR": str(dist)})


def test_an_invalid_spark_app_name_is_reported_with_the_other_problems() -> None:
    env = EnvReader({"SPARK_APP_NAME": "no spaces", "SPARK_KV_PORT": "x"})
    assert read_app_name(env) == "default"
    env.integer("SPARK_KV_PORT", 1)
    with pytest.raises(ConfigError) as raised:
        env.finish()
    assert len(raised.value.problems) == 2
    assert "SPARK_APP_NAME='no spaces' is not an app name (1 to 64 of" in raised.value.problems[0]


@pytest.mark.parametrize(
    ("path", "app"),
    [
        ("/runtime/my-app/kv/key", "my-app"),
        ("/runtime/my-app/kv", "my-app"),
        ("/runtime/my-app/user?x=1", "my-app"),
        ("/runtime/a%20b/kv", "a b"),
        ("/runtime//kv", ""),
        ("/_spark/kv/key", None),
        ("/runtimes/a/kv", None),
        ("/", None),
    ],
)
def test_the_app_of_a_path(path: str, app: str | None) -> None:
    assert app_of_path(path) == app


def test_every_runtime_template_has_the_route_of_its_spark_twin() -> None:
    for service, twin in (("kv", "spark-kv"), ("db", "spark-db"), ("user", "spark-user"), ("loaded", "spark-loaded")):
        spark = route_for_path(f"/_spark/{service}")
        assert spark is not None and spark.name == twin
    pairs = [
        ("/runtime/{app}/kv", "runtime-kv"),
        ("/runtime/{app}/kv/{key}", "runtime-kv"),
        ("/runtime/{app}/db/collections/{name}", "runtime-db"),
        ("/runtime/{app}/user", "runtime-user"),
        ("/runtime/{app}/loaded", "runtime-loaded"),
    ]
    for template, name in pairs:
        route = route_for_path(template)
        assert route is not None and route.name == name, template
        twin = route_for_path(template.replace("/runtime/{app}", "/_spark"))
        assert twin is not None
        assert (route.upstream, route.body_limit, route.json_body, route.idempotent) == (
            twin.upstream,
            twin.body_limit,
            twin.json_body,
            twin.idempotent,
        )
    for path in ("/runtime/{app}/llm", "/runtime/{app}/user/x", "/runtime/{app}/kvx", "/runtime", "/runtime/a"):
        assert route_for_path(path) is None, path


def _invalid_app_regex() -> str:
    (reply,) = [reply for reply in DIRECT_REPLIES if reply.name == "runtime-invalid-app"]
    match = reply.match["safe_regex"]
    assert isinstance(match, dict)
    return str(match["regex"])


@pytest.mark.parametrize("name", [*VALID, *INVALID])
def test_the_edge_refuses_what_no_app_name_can_be_and_leaves_the_length_to_the_services(name: str) -> None:
    """The edge's 400 (RE2, which Python's re reads alike here) for a `/runtime/{app}` segment as sent."""
    segment = name.replace("\n", "%0A").replace("\x00", "%00").replace(" ", "%20")
    refused = re.fullmatch(_invalid_app_regex(), f"/runtime/{segment}/kv/key") is not None
    assert refused == (not valid_app_name(name) and len(name) <= 64 and "/" not in name)


def test_apps_have_spaces_no_default_app_collection_can_have() -> None:
    assert space_of("c") == space_of("c", "default") == "kv:c"
    assert space_of("c", "my-app") == "app:{my-app}:kv:c"
    # Whatever a default-app collection is called, its space starts with `kv:`.
    assert not space_of("", "a").startswith("kv:")
    assert space_of("{a}:kv:c") != space_of("c", "a")
