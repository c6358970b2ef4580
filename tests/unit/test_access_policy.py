"""The access settings and the limits file: checked once at start-up."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from services.access.config import read_config
from services.access.policy import DEFAULT_LIMITS_PATH, ROUTE_CLASSES, PolicyError, load_limits, parse_limits
from services.common.config import ConfigError
from services.common.retry import retry_after

INTERNAL = {"SPARK_INTERNAL_TOKEN": "i" * 64}


def document(**overrides: Any) -> dict[str, Any]:
    classes = {name: {"per_user": 10, "per_address": 5, "window": "minute"} for name in ROUTE_CLASSES}
    return {"classes": classes, **overrides}


def test_the_shipped_limits_cover_every_route_class_with_user_limits_above_address_limits() -> None:
    limits = load_limits(DEFAULT_LIMITS_PATH)
    assert tuple(limits.classes) == ROUTE_CLASSES
    for limit in limits.classes.values():
        assert limit.per_user >= limit.per_address >= 1
        assert limit.window_s == 60
    assert limits.auth_failures_per_address == 30


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["classes"].pop("llm"), "missing llm"),
        (lambda d: d["classes"].update(extra={"per_user": 1, "per_address": 1}), "unknown extra"),
        (lambda d: d["classes"]["kv"].update(window="fortnight"), "window must be one of"),
        (lambda d: d["classes"]["kv"].update(per_user=0), "per_user must be an integer"),
        (lambda d: d["classes"]["kv"].update(per_address=True), "per_address must be an integer"),
        (lambda d: d["classes"]["kv"].update(burst=3), "unknown keys"),
        (lambda d: d.update(typo=1), "unknown settings"),
        (lambda d: d.update(auth_failures_per_address="many"), "auth_failures must be an integer"),
    ],
)
def test_a_bad_limits_file_is_refused_naming_what_is_wrong(change: Any, message: str) -> None:
    bad = document()
    change(bad)
    with pytest.raises(PolicyError, match=message):
        parse_limits(bad, "limits.toml")


def test_the_service_refuses_to_start_on_an_unreadable_limits_file(tmp_path: Path) -> None:
    broken = tmp_path / "limits.toml"
    broken.write_text("[classes.kv\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="SPARK_ACCESS_LIMITS"):
        read_config({"SPARK_ACCESS_LIMITS": str(broken)})


def test_development_mode_is_the_embedded_default_and_refused_next_to_redis_unless_forced() -> None:
    assert read_config({}).gate.mode == "development"
    assert read_config({"REDIS_URL": "redis://r:6379/0", "ADMIN_TOKEN": "t", **INTERNAL}).gate.mode == "keys"
    with pytest.raises(ConfigError, match="refused with REDIS_URL"):
        read_config({"REDIS_URL": "redis://r:6379/0", "SPARK_ACCESS_MODE": "development"})
    forced = read_config(
        {"REDIS_URL": "redis://r:6379/0", "SPARK_ACCESS_MODE": "development", "SPARK_ACCESS_ALLOW_DEVELOPMENT": "true"}
    )
    assert forced.gate.mode == "development"
    nonce_routes = read_config({"SPARK_ACCESS_NONCE_ROUTES": "admin, GetSparkValue ,"}).gate.nonce_routes
    assert nonce_routes == {"admin", "GetSparkValue"}
    assert "s3cret" not in repr(read_config({"ADMIN_TOKEN": "s3cret", **INTERNAL}))
    assert INTERNAL["SPARK_INTERNAL_TOKEN"] not in repr(read_config(INTERNAL))


@pytest.mark.parametrize(
    ("environ", "what_to_set"),
    [
        (
            {"REDIS_URL": "redis://r:6379/0"},
            "SPARK_ACCESS_MODE=development and SPARK_ACCESS_ALLOW_DEVELOPMENT=true",
        ),
        ({"SPARK_ACCESS_MODE": "keys"}, "SPARK_ACCESS_MODE=development (everyone"),
    ],
)
def test_keys_mode_without_an_admin_token_is_refused_saying_what_to_set(
    environ: dict[str, str], what_to_set: str
) -> None:
    """No key could ever be created (they are made with the admin token): every request would be a 401."""
    with pytest.raises(ConfigError) as raised:
        read_config({**environ, **INTERNAL})
    (problem,) = raised.value.problems
    assert "ADMIN_TOKEN is unset" in problem and "Set ADMIN_TOKEN" in problem
    assert what_to_set in problem
    assert ("the default with REDIS_URL set" in problem) == ("SPARK_ACCESS_MODE" not in environ)
    assert read_config({**environ, "ADMIN_TOKEN": "s3cret", **INTERNAL}).gate.mode == "keys"


def test_keys_mode_needs_the_internal_token_and_a_long_one() -> None:
    """Without it the edge could not vouch for client addresses nor services for their callers."""
    with pytest.raises(ConfigError) as raised:
        read_config({"SPARK_ACCESS_MODE": "keys", "ADMIN_TOKEN": "s3cret"})
    (problem,) = raised.value.problems
    assert "SPARK_INTERNAL_TOKEN is unset" in problem
    with pytest.raises(ConfigError, match="at least 32 characters"):
        read_config({"SPARK_INTERNAL_TOKEN": "short"})
    assert read_config({}).gate.internal_token is None


def test_checks_can_be_turned_off_only_in_development_mode() -> None:
    assert read_config({}).gate.checks
    assert not read_config({"SPARK_ACCESS_CHECKS": "off"}).gate.checks
    keys = {"SPARK_ACCESS_MODE": "keys", "ADMIN_TOKEN": "s3cret", **INTERNAL}
    with pytest.raises(ConfigError, match="refused outside development mode"):
        read_config({**keys, "SPARK_ACCESS_CHECKS": "off"})


@pytest.mark.parametrize(("seconds", "header"), [(0.0, "1"), (0.2, "1"), (1.0, "1"), (1.01, "2"), (59.5, "60")])
def test_retry_after_is_whole_seconds_rounded_up_and_never_zero(seconds: float, header: str) -> None:
    assert retry_after(seconds) == header
    assert int(header) >= math.ceil(seconds)
