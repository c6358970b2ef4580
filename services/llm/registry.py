"""The model registry: providers, models, aliases, fallbacks and prices, loaded from TOML.

Routing asks the registry one question: for the name a caller used, which
(model, provider) candidates to try, in order, given the providers that have
keys. Everything else (breakers, retries) is the gateway's.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, quoted

DEFAULT_REGISTRY_PATH = Path(__file__).with_name("models.toml")
# No model, alias or provider name is longer; a longer one is refused as such, not looked up.
MAX_NAME_CHARS = 200
# A model the registry does not list, named `<provider>/<upstream id>`: the most tokens a call may ask for
# (and what a budget reserves for a call that does not say), since the registry knows nothing of it.
UNLISTED_MAX_TOKENS = 32_768
# The provider of an embeddings model named without one (OpenAI's own ids, as its SDK sends them).
EMBEDDINGS_PROVIDER = "openai"

Api = Literal["openai", "anthropic"]


class RegistryError(ValueError):
    """The registry file is not a valid registry; the message names the entry."""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    api: Api
    key_variable: str
    base_url_variable: str
    base_url: str
    vision_model: str


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    provider: str
    upstream: str
    vision: bool
    # What to send when the caller gives no max_tokens (None: the provider's own default), and the cap.
    default_max_tokens: int | None
    max_tokens: int
    fallbacks: tuple[str, ...]
    # None for a model the registry does not list: its usage is recorded at no known cost.
    price: Price | None


@dataclass(frozen=True, slots=True)
class Registry:
    default_model: str
    providers: Mapping[str, ProviderSpec]
    models: Mapping[str, ModelSpec]
    aliases: Mapping[str, str]

    def with_default(self, name: str) -> Registry:
        """The same registry with another default model (DEFAULT_MODEL); raises RegistryError if it is unknown."""
        if self.canonical(name) not in self.models:
            raise RegistryError(f"default model {name!r} is not a model or alias in the registry")
        return dataclasses.replace(self, default_model=name)

    def canonical(self, name: str) -> str:
        return self.aliases.get(name, name)

    def candidates(
        self, name: str, provider: str, configured: Collection[str], *, images: bool = False
    ) -> list[ModelSpec]:
        """The models to try for a request, in order; raises the caller-facing error when there are none.

        `name` "" means the provider's default vision model when `provider` is given, else the default model
        (for a request with `images`, `default_vision_model`).
        """
        _check_length("provider", provider)
        _check_length("model", name)
        if provider and provider not in self.providers:
            raise InvalidArgument(
                f"unknown provider {quoted(provider)}; the registry has: {', '.join(sorted(self.providers))}",
                reason="UNKNOWN_PROVIDER",
            )
        if not name and provider:
            name = self.providers[provider].vision_model
        elif not name:
            name = self.default_vision_model(configured) if images else self.default_model
        model = self.models.get(self.canonical(name)) or self.unlisted(name)
        if model is None:
            available = self.available(configured)
            listed = ", ".join(available) if available else "none (no provider has a key)"
            raise InvalidArgument(f"unknown model {quoted(name)}; available models: {listed}", reason="UNKNOWN_MODEL")
        chain = [model, *(self.models[f] for f in model.fallbacks if f != model.name)]
        if provider:
            chain = [m for m in chain if m.provider == provider]
            if not chain:
                raise InvalidArgument(
                    f"model {quoted(name)} is not served by provider {quoted(provider)}", reason="MODEL_NOT_ON_PROVIDER"
                )
        usable = [m for m in chain if m.provider in configured]
        if not usable:
            raise _needs_key(name, sorted({self.providers[m.provider].key_variable for m in chain}))
        return usable

    def unlisted(self, name: str) -> ModelSpec | None:
        """`<provider>/<upstream id>` for a provider of the registry and a model it does not list (a new release,
        say): that provider, asked for that id as it is, with no fallbacks and no price. None for other names."""
        provider, separator, upstream = name.partition("/")
        if not separator or not upstream or provider not in self.providers:
            return None
        return ModelSpec(name, provider, upstream, True, None, UNLISTED_MAX_TOKENS, (), None)

    def embedding_candidates(self, name: str, configured: Collection[str]) -> list[ModelSpec]:
        """The model of an embeddings request: `<provider>/<upstream id>`, or a bare id of OpenAI's own
        (`text-embedding-3-small`). The registry lists chat models only. Raises the caller-facing error."""
        _check_length("model", name)
        model = self.unlisted(name) or (self.unlisted(f"{EMBEDDINGS_PROVIDER}/{name}") if "/" not in name else None)
        if model is None:
            raise InvalidArgument(
                f"unknown embeddings model {quoted(name)}: name it `<provider>/<model id>` with one of the "
                f"providers {', '.join(sorted(self.providers))}",
                reason="UNKNOWN_MODEL",
            )
        if model.provider not in configured:
            raise _needs_key(name, [self.providers[model.provider].key_variable])
        return [model]

    def default_vision_model(self, configured: Collection[str]) -> str:
        """The model for a request with images that names none: the default model if it takes images and a
        configured provider serves it, else the vision model of the first provider (in registry order) that
        has a key, so that one provider's key is enough for image requests. With no key at all, the default
        model, whose error names the variables to set."""
        default = self.models[self.canonical(self.default_model)]
        if default.vision and self._served(default, configured):
            return self.default_model
        return next((p.vision_model for p in self.providers.values() if p.name in configured), self.default_model)

    def available(self, configured: Collection[str]) -> list[str]:
        """Every model and alias a caller can be served, sorted."""
        names = [name for name, model in self.models.items() if self._served(model, configured)]
        names += [alias for alias, target in self.aliases.items() if self._served(self.models[target], configured)]
        return sorted(names)

    def _served(self, model: ModelSpec, configured: Collection[str]) -> bool:
        return model.provider in configured or any(self.models[f].provider in configured for f in model.fallbacks)

    def serving_provider(self, name: str, configured: Collection[str]) -> str:
        """The provider that would serve `name` first (for `owned_by` in model lists)."""
        return self.candidates(name, "", configured)[0].provider


def _check_length(field: str, value: str) -> None:
    if len(value) > MAX_NAME_CHARS:
        problem = f"is longer than {MAX_NAME_CHARS} characters"
        raise InvalidArgument(
            f"{field} {problem}", reason="INVALID_FIELD", violations=(FieldViolation(field, problem),)
        )


def _needs_key(name: str, variables: list[str]) -> FailedPrecondition:
    return FailedPrecondition(
        f"model {quoted(name)} needs a provider key: set {' or '.join(variables)}",
        reason="PROVIDER_NOT_CONFIGURED",
        metadata={"variables": ",".join(variables)},
    )


def load_registry(path: Path = DEFAULT_REGISTRY_PATH) -> Registry:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise RegistryError(f"cannot read {path}: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise RegistryError(f"{path} is not valid TOML: {error}") from error
    return parse_registry(raw)


def _table(raw: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise RegistryError(f"{where}{key} must be a table")
    return value


def _text(raw: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise RegistryError(f"{where}: {key} must be a non-empty string")
    return value


def _positive_int(raw: Mapping[str, Any], key: str, where: str, default: int | None) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if type(value) is not int or value < 1:
        raise RegistryError(f"{where}: {key} must be a positive integer")
    return value


def _price(raw: Any, where: str) -> Price:
    if not isinstance(raw, dict) or set(raw) != {"input", "output"}:
        raise RegistryError(f"{where}: price must be {{ input = <USD per Mtok>, output = <USD per Mtok> }}")
    values = [raw["input"], raw["output"]]
    if any(type(v) not in (int, float) or v < 0 for v in values):
        raise RegistryError(f"{where}: prices must be non-negative numbers")
    return Price(float(values[0]), float(values[1]))


_PROVIDER_KEYS = {"api", "key_variable", "base_url_variable", "base_url", "vision_model"}
_MODEL_KEYS = {"provider", "upstream", "vision", "default_max_tokens", "max_tokens", "fallbacks", "price"}


def _unknown_keys(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    if unknown := sorted(set(raw) - allowed):
        raise RegistryError(f"{where}: unknown keys {', '.join(unknown)}")


def _parse_providers(raw: Mapping[str, Any]) -> dict[str, ProviderSpec]:
    providers: dict[str, ProviderSpec] = {}
    for name, spec in _table(raw, "providers", "").items():
        where = f"providers.{name}"
        if not isinstance(spec, dict):
            raise RegistryError(f"{where} must be a table")
        _unknown_keys(spec, _PROVIDER_KEYS, where)
        api = spec.get("api")
        if api not in ("openai", "anthropic"):
            raise RegistryError(f"{where}: api must be 'openai' or 'anthropic'")
        providers[name] = ProviderSpec(
            name=name,
            api=api,
            key_variable=_text(spec, "key_variable", where),
            base_url_variable=_text(spec, "base_url_variable", where),
            base_url=_text(spec, "base_url", where),
            vision_model=_text(spec, "vision_model", where),
        )
    return providers


def _parse_models(raw: Mapping[str, Any], providers: Mapping[str, ProviderSpec]) -> dict[str, ModelSpec]:
    models: dict[str, ModelSpec] = {}
    for name, spec in _table(raw, "models", "").items():
        where = f'models."{name}"'
        if not isinstance(spec, dict):
            raise RegistryError(f"{where} must be a table")
        _unknown_keys(spec, _MODEL_KEYS, where)
        provider = _text(spec, "provider", where)
        if provider not in providers:
            raise RegistryError(f"{where}: unknown provider {provider!r}")
        fallbacks = spec.get("fallbacks", [])
        if not isinstance(fallbacks, list) or not all(isinstance(f, str) for f in fallbacks):
            raise RegistryError(f"{where}: fallbacks must be a list of model names")
        max_tokens = _positive_int(spec, "max_tokens", where, 4096)
        assert max_tokens is not None
        models[name] = ModelSpec(
            name=name,
            provider=provider,
            upstream=_text(spec, "upstream", where, default=name),
            vision=spec.get("vision", False) is True,
            default_max_tokens=_positive_int(spec, "default_max_tokens", where, None),
            max_tokens=max_tokens,
            fallbacks=tuple(fallbacks),
            price=_price(spec.get("price", {"input": 0, "output": 0}), where),
        )
    return models


def parse_registry(raw: Mapping[str, Any]) -> Registry:
    """Builds a registry from parsed TOML, checking every cross-reference."""
    _unknown_keys(raw, {"default_model", "providers", "models", "aliases"}, "registry")
    providers = _parse_providers(raw)
    models = _parse_models(raw, providers)
    aliases = _table(raw, "aliases", "")
    for alias, target in aliases.items():
        if not isinstance(target, str) or target not in models:
            raise RegistryError(f"aliases.{alias}: {target!r} is not a model")
        if alias in models:
            raise RegistryError(f"aliases.{alias}: the name is already a model")
    for model in models.values():
        for fallback in model.fallbacks:
            if fallback not in models:
                raise RegistryError(f'models."{model.name}": fallback {fallback!r} is not a model')
    for provider in providers.values():
        if aliases.get(provider.vision_model, provider.vision_model) not in models:
            raise RegistryError(f"providers.{provider.name}: vision_model {provider.vision_model!r} is not a model")
    default_model = _text(raw, "default_model", "registry")
    return Registry(default_model, providers, models, dict(aliases)).with_default(default_model)
