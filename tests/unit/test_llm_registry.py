"""The model registry: the shipped defaults, routing candidates, and the errors callers and operators see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.common.errors import FailedPrecondition, InvalidArgument
from services.llm.config import read_config
from services.llm.registry import (
    DEFAULT_REGISTRY_PATH,
    MAX_NAME_CHARS,
    UNLISTED_MAX_TOKENS,
    Price,
    RegistryError,
    load_registry,
    parse_registry,
)

REGISTRY = load_registry()


def _minimal(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "default_model": "a",
        "providers": {
            "p": {"api": "openai", "key_variable": "P_KEY", "base_url_variable": "P_URL", "base_url": "http://p"},
        },
        "models": {"a": {"provider": "p"}},
    }
    raw["providers"]["p"]["vision_model"] = "a"
    raw.update(changes)
    return raw


def test_the_spark_runtime_ids_and_retired_claude_names_map_to_live_models() -> None:
    assert REGISTRY.canonical("openai/gpt-4o") == "gpt-4o"
    assert REGISTRY.canonical("openai/gpt-4o-mini") == "gpt-4o-mini"
    assert REGISTRY.canonical("claude-3-sonnet") == "claude-sonnet-4-5"
    assert REGISTRY.canonical("claude-3-haiku") == "claude-haiku-4-5"
    assert REGISTRY.models["gpt-4o"].provider == "openai"


def test_candidates_follow_fallbacks_in_order_and_skip_unconfigured_providers() -> None:
    everything = {"openai", "anthropic", "openrouter"}
    names = [m.name for m in REGISTRY.candidates("openai/gpt-4o", "", everything)]
    assert names == ["gpt-4o", "openrouter/openai/gpt-4o", "claude-sonnet-4-5"]
    names = [m.name for m in REGISTRY.candidates("gpt-4o", "", {"anthropic"})]
    assert names == ["claude-sonnet-4-5"]


def test_an_empty_model_means_the_default_or_the_providers_vision_model() -> None:
    assert REGISTRY.candidates("", "", {"openai"})[0].name == REGISTRY.default_model
    assert REGISTRY.candidates("", "bigmodel", {"bigmodel"})[0].name == "glm-4.5v"
    assert [m.provider for m in REGISTRY.candidates("gpt-4o", "openrouter", {"openrouter", "openai"})] == ["openrouter"]


def test_a_request_with_images_and_no_model_gets_a_vision_model_that_a_key_serves() -> None:
    assert REGISTRY.candidates("", "", {"bigmodel"}, images=True)[0].name == "glm-4.5v"
    assert REGISTRY.candidates("", "", {"openai", "bigmodel"}, images=True)[0].name == REGISTRY.default_model
    # The default is served through its fallback: it stays the default.
    assert REGISTRY.candidates("", "", {"anthropic"}, images=True)[0].name == "claude-haiku-4-5"
    # A default that takes no images gives way to a vision model.
    assert REGISTRY.with_default("glm-4.5").candidates("", "", {"bigmodel"}, images=True)[0].name == "glm-4.5v"
    with pytest.raises(FailedPrecondition, match="needs a provider key: set ANTHROPIC_API_KEY or OPENAI_API_KEY"):
        REGISTRY.candidates("", "", set(), images=True)
    with pytest.raises(FailedPrecondition, match="gpt-4o-mini"):
        REGISTRY.candidates("", "", {"bigmodel"})


def test_an_unknown_model_lists_what_is_available() -> None:
    with pytest.raises(InvalidArgument, match="unknown model 'gpt-9'") as caught:
        REGISTRY.candidates("gpt-9", "", {"anthropic"})
    assert "claude-haiku-4-5" in caught.value.message
    assert "gpt-4o-mini" in caught.value.message  # served through its Claude fallback
    assert caught.value.reason == "UNKNOWN_MODEL"


def test_any_model_of_a_configured_provider_is_asked_for_as_named() -> None:
    """A new model works before the registry lists it: `<provider>/<upstream id>`, sent as that id."""
    (model,) = REGISTRY.candidates("openai/gpt-5.1", "", {"openai"})
    assert (model.provider, model.upstream, model.fallbacks, model.price) == ("openai", "gpt-5.1", (), None)
    assert model.max_tokens == UNLISTED_MAX_TOKENS and model.default_max_tokens is None
    # The upstream id is passed on whole, slashes included (OpenRouter's ids have one).
    (routed,) = REGISTRY.candidates("openrouter/qwen/qwen3-vl", "", {"openrouter"})
    assert (routed.provider, routed.upstream) == ("openrouter", "qwen/qwen3-vl")
    # A listed name wins: openai/gpt-4o is the registry's gpt-4o, with its price and fallbacks.
    assert REGISTRY.candidates("openai/gpt-4o", "", {"openai"})[0].name == "gpt-4o"
    with pytest.raises(FailedPrecondition, match="needs a provider key: set ANTHROPIC_API_KEY"):
        REGISTRY.candidates("anthropic/claude-opus-4-5", "", {"openai"})
    with pytest.raises(InvalidArgument, match="is not served by provider 'anthropic'"):
        REGISTRY.candidates("openai/gpt-5.1", "anthropic", {"openai", "anthropic"})
    for name in ("nope/gpt-5.1", "openai/", "/gpt-5.1"):
        with pytest.raises(InvalidArgument, match="unknown model"):
            REGISTRY.candidates(name, "", {"openai"})
    # /v1/models keeps listing the registry only.
    assert "openai/gpt-5.1" not in REGISTRY.available({"openai"})


def test_a_model_without_a_configured_provider_names_the_variables() -> None:
    with pytest.raises(FailedPrecondition, match="BIGMODEL_API_KEY or OPENROUTER_API_KEY"):
        REGISTRY.candidates("glm-4.5v", "", {"openai"})
    with pytest.raises(InvalidArgument, match="unknown provider 'nope'"):
        REGISTRY.candidates("gpt-4o", "nope", {"openai"})


def test_available_lists_models_and_aliases_that_can_be_served() -> None:
    available = REGISTRY.available({"anthropic"})
    assert "claude-3-haiku" in available and "claude-haiku-4-5" in available
    assert "glm-4.5v" not in available
    assert REGISTRY.available(set()) == []


def test_prices_give_cost_per_token() -> None:
    assert Price(2.5, 10.0).cost(1_000_000, 500_000) == pytest.approx(7.5)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"models": {"a": {"provider": "q"}}}, "unknown provider 'q'"),
        ({"models": {"a": {"provider": "p", "fallbacks": ["b"]}}}, "fallback 'b' is not a model"),
        ({"models": {"a": {"provider": "p", "price": {"input": -1, "output": 1}}}}, "non-negative"),
        ({"models": {"a": {"provider": "p", "colour": "red"}}}, "unknown keys colour"),
        ({"models": {"a": {"provider": "p", "max_tokens": 0}}}, "positive integer"),
        ({"aliases": {"x": "missing"}}, "aliases.x"),
        ({"default_model": "zzz"}, "default model 'zzz'"),
    ],
)
def test_invalid_registries_are_refused_naming_the_entry(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        parse_registry(_minimal(**changes))


def test_config_reads_keys_through_the_registry_variables_and_reports_problems(tmp_path: Path) -> None:
    config = read_config({"OPENAI_API_KEY": "sk-1", "OPENAI_BASE_URL": "http://127.0.0.1:1/v1/"})
    assert set(config.providers) == {"openai"}
    assert config.providers["openai"].base_url == "http://127.0.0.1:1/v1"
    assert "sk-1" not in repr(config)
    broken = tmp_path / "models.toml"
    broken.write_text(DEFAULT_REGISTRY_PATH.read_text() + '\n[models."x"]\nprovider = "nowhere"\n')
    with pytest.raises(Exception, match="SPARK_LLM_MODELS") as caught:
        read_config({"SPARK_LLM_MODELS": str(broken), "DEFAULT_MODEL": "nope", "SPARK_LLM_INJECTION": "maybe"})
    assert "DEFAULT_MODEL" in str(caught.value) and "SPARK_LLM_INJECTION" in str(caught.value)


@pytest.mark.parametrize(
    ("model", "provider", "field"), [("m" * 30_000, "", "model"), ("gpt-4o", "p" * 201, "provider")]
)
def test_a_name_longer_than_any_in_the_registry_is_refused_as_too_long(model: str, provider: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        REGISTRY.candidates(model, provider, {"openai"})
    assert caught.value.message == f"{field} is longer than {MAX_NAME_CHARS} characters"
    assert [v.field for v in caught.value.violations] == [field]


def test_an_unknown_model_is_echoed_as_a_short_prefix() -> None:
    with pytest.raises(InvalidArgument) as caught:
        REGISTRY.candidates("x" * MAX_NAME_CHARS, "", {"openai"})
    assert caught.value.message.startswith(f"unknown model {'x' * 64!r}\u2026 ({MAX_NAME_CHARS} characters);")
