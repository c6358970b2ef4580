"""The OpenAI-compatible API beyond chat, through the edge and the official SDK: a model the registry does not
list yet, named `<provider>/<upstream id>`, goes to that provider as that id and its usage is recorded as
unpriced in /v1/usage; embeddings, as floats and as base64, with usage and precise refusals."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import FAILED_KEY
from tests.fakes.providers import DEFAULT_REPLY, FakeProviderThread
from tests.support.http import api_error
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

ADMIN = "admin-token-for-the-unlisted-models-test"
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def suite(fake: FakeProviderThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSuite]:
    env = {**fake.env(), "OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "ak-test", "ADMIN_TOKEN": ADMIN}
    running = RunningSuite.start(tmp_path_factory.mktemp("suite-unlisted"), env)
    yield running
    running.stop()


@pytest.fixture
def sdk(suite: RunningSuite, request: pytest.FixtureRequest) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{suite.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client
    if request.node.stash.get(FAILED_KEY, False):
        sys.stderr.write(suite.logs())


def usage(suite: RunningSuite) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{suite.base_url}/v1/usage", headers={"x-admin-token": ADMIN}, timeout=10)
    assert response.status_code == 200, response.text
    return {record["model"]: record for record in response.json()["records"]}


@pytest.mark.parametrize(
    ("model", "api", "upstream"),
    [
        ("openai/gpt-5.1-preview", "openai", "gpt-5.1-preview"),
        ("anthropic/claude-opus-4-5", "anthropic", "claude-opus-4-5"),
    ],
)
def test_an_unlisted_model_goes_to_its_provider_as_named_and_is_recorded_unpriced(
    suite: RunningSuite, sdk: openai.OpenAI, fake: FakeProviderThread, model: str, api: str, upstream: str
) -> None:
    completion = sdk.chat.completions.create(model=model, messages=HELLO)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert completion.model == model
    sent = fake.requests[-1]
    assert (sent.api, sent.body["model"]) == (api, upstream)
    record = usage(suite)[model]
    assert record["priced"] is False and record["cost_usd"] == 0 and int(record["requests"]) >= 1
    assert int(record["completion_tokens"]) > 0


def test_a_listed_model_keeps_its_price_and_the_model_list_stays_the_registrys(
    suite: RunningSuite, sdk: openai.OpenAI
) -> None:
    sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    record = usage(suite)["gpt-4o-mini"]
    assert record["priced"] is True and record["cost_usd"] > 0
    assert "openai/gpt-5.1-preview" not in {m.id for m in sdk.models.list()}


def test_an_unlisted_model_of_an_unknown_or_keyless_provider_is_a_precise_400(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match=re.escape("unknown model 'nope/gpt-5.1'")):
        sdk.chat.completions.create(model="nope/gpt-5.1", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="needs a provider key: set OPENROUTER_API_KEY"):
        sdk.chat.completions.create(model="openrouter/qwen/qwen3-vl", messages=HELLO)  # type: ignore[arg-type]


# --- embeddings --------------------------------------------------------------------------------------


def test_the_sdk_gets_embeddings_in_its_default_base64_and_usage_is_recorded(
    suite: RunningSuite, sdk: openai.OpenAI, fake: FakeProviderThread
) -> None:
    answer = sdk.embeddings.create(model="text-embedding-3-small", input="hello embedded world")
    (item,) = answer.data
    assert len(item.embedding) == 8 and all(isinstance(x, float) for x in item.embedding)
    assert answer.model == "text-embedding-3-small" and answer.usage.prompt_tokens == 3
    sent = fake.requests[-1]
    assert sent.path.endswith("/embeddings") and sent.headers["authorization"] == "Bearer sk-test"
    assert (sent.body["model"], sent.body["encoding_format"], sent.body["input"]) == (
        "text-embedding-3-small",
        "base64",
        ["hello embedded world"],
    )
    # Recorded under the provider-qualified name the bare id stood for.
    record = usage(suite)["openai/text-embedding-3-small"]
    assert int(record["prompt_tokens"]) >= 3 and int(record["completion_tokens"]) == 0 and record["priced"] is False


def test_a_list_of_inputs_with_dimensions_as_floats(sdk: openai.OpenAI, fake: FakeProviderThread) -> None:
    answer = sdk.embeddings.create(
        model="openai/text-embedding-3-large", input=["one", "two words"], dimensions=4, encoding_format="float"
    )
    assert [item.index for item in answer.data] == [0, 1]
    assert all(len(item.embedding) == 4 for item in answer.data)
    assert answer.model == "openai/text-embedding-3-large"
    sent = fake.requests[-1].body
    assert (sent["model"], sent["dimensions"], sent["encoding_format"]) == ("text-embedding-3-large", 4, "float")


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"model": "anthropic/claude-haiku-4-5", "input": "x"}, "serves no embeddings"),
        ({"model": "nope/embed", "input": "x"}, "unknown embeddings model"),
        ({"model": "text-embedding-3-small", "input": [[1, 2, 3]]}, "token arrays are not supported"),
        ({"model": "text-embedding-3-small", "input": ""}, "input[0]: must not be empty"),
        ({"model": "text-embedding-3-small", "input": ["x"] * 2049}, "at most 2048 texts"),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "text-embedding-3-small", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "text-embedding-3-small", "input": "x", "extra": 1}, "extra: is not an embeddings field"),
        ({"input": "x"}, "model: must be a model id"),
    ],
)
def test_bad_embeddings_requests_are_a_400_naming_the_field(suite: RunningSuite, body: Any, text: str) -> None:
    api_error(httpx.post(f"{suite.base_url}/v1/embeddings", json=body, timeout=10), 400, text)
