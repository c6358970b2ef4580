"""Load for an OpenAI-compatible gateway: one non-streaming chat completion, POSTed by wrk over keep-alive connections.

    result = measure_chat(f"{peer.base_url}/chat/completions", headers=peer.headers, connections=16, duration_s=10)

wrk runs benchmarks/wrk/load.lua, which sends the same body every time and reports non-2xx responses
by status; the result is harness.LoadResult, like every other load run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from benchmarks.harness import LoadResult, Wrk

MODEL: Final = "gpt-4o-mini"
# A proxy in front of an LLM answers in tens to hundreds of ms under load; wrk's own 2 s would count
# a slow second as errors rather than as the latency it is.
REQUEST_TIMEOUT_S: Final = 10.0


def chat_body(model: str = MODEL) -> bytes:
    """The non-streaming chat completion every run sends (and the peers are probed with)."""
    message = {"role": "user", "content": "Say hello"}
    return json.dumps({"model": model, "messages": [message], "temperature": 0.7}, separators=(",", ":")).encode()


CHAT_BODY: Final = chat_body()

_WEATHER_SCHEMA: Final = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def tool_body(model: str = MODEL) -> bytes:
    """A chat completion that offers one tool, as agent frameworks send every call (the fake answers it with a
    call)."""
    body = json.loads(chat_body(model))
    function = {"name": "get_weather", "description": "The weather in a city", "parameters": _WEATHER_SCHEMA}
    body["tools"] = [{"type": "function", "function": function}]
    return json.dumps(body, separators=(",", ":")).encode()


def messages_tool_body(model: str) -> bytes:
    """The same request in the Anthropic Messages API's shape (/v1/messages)."""
    tool = {"name": "get_weather", "description": "The weather in a city", "input_schema": _WEATHER_SCHEMA}
    body = {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": "Say hello"}], "tools": [tool]}
    return json.dumps(body, separators=(",", ":")).encode()


def measure_chat(
    url: str,
    *,
    headers: Mapping[str, str],
    connections: int,
    duration_s: float,
    body: bytes = CHAT_BODY,
    threads: int = 2,
) -> LoadResult:
    """POSTs `body` to `url` over `connections` keep-alive connections for `duration_s`; non-2xx count as errors."""
    return Wrk(
        url,
        ["json", body.decode()],
        duration_s=duration_s,
        connections=connections,
        threads=threads,
        headers=headers,
        timeout_s=REQUEST_TIMEOUT_S,
    ).run()
