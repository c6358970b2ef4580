"""A model the registry does not list yet, named `<provider>/<upstream id>`, goes to that provider as that id,
through the edge and the official SDK, and its usage is recorded as unpriced in /v1/usage."""

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
from tests.support.suite import RunningSuite

pytestmark = pytest.mark.e2e

ADMIN = "admin-token-for-the-unlisted-models-test"
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderThread]:
    with FakeProviderThread() as provider:
        yield provider


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
