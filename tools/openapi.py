"""Generates the edge's HTTP contract as one Swagger 2.0 file from the protos' `google.api.http` rules.

`python -m tools.openapi` writes the committed `docs/openapi/spark.swagger.json`; with `--check` it
generates into a temporary directory and exits 1 if the committed file differs (a drift gate like the
stubs' one, run by tests/e2e/test_openapi.py).

How the file is made:

- protoc (grpcio-tools) builds the descriptor set by `tools.protogen`'s recipe, comments included.
- Each of our protos goes through Debian `golang-grpc-gateway`'s `protoc-gen-swagger` (v1) on its own:
  the plugin refuses several packages in one request ("inconsistent package names"). It predates proto3
  `optional`, and protoc will not hand such a file to a plugin that does not declare support for it, so
  the plugin is driven directly over its stdin/stdout protocol (a `CodeGeneratorRequest` in, a
  `CodeGeneratorResponse` out) with every `optional` made a plain field: in JSON both are optional.
- The per-file documents are merged. Definitions take their full proto names (`spark.kv.v1.Entry`
  instead of the plugin's `v1Entry`), and only those an HTTP operation reaches are kept.
- JSON field names follow the route, as the edge prints them: snake_case on the routes with
  `snake_case=True` in `edge/routes.py` (the plugin's proto names), lowerCamelCase elsewhere (its
  `json_names_for_fields`). A file whose operations mix both is refused until this learns to split it.
- Every operation gets the error responses the edge really sends, all in one shape (`ErrorBody`): the
  transcoded `google.rpc.Status` of a service (`code` is the gRPC code), or Envoy's own local reply and
  the services' access refusals, which are errors like any other (see `edge/envoy.py`, `services/access/checkpoint.py`).
  Routes that set their HTTP status (`x-http-status`) document it: 201 for a created prompt, 503 with
  the health report for an unhealthy `/healthz`.
- Security follows `edge/routes.py`: `X-Admin-Token` on admin routes (on writes only for the prompts
  routes), none on public routes, and an API key (`Authorization: Bearer` or `X-Api-Key`) elsewhere,
  which development mode does not ask for.

Bodies the protos cannot describe are written by hand below:

- `google.api.HttpBody` request bodies are the raw HTTP body. KV values are any JSON text (the Spark
  runtime sends them as `text/plain`; only `application/json` is listed, since a JSON schema cannot say
  "JSON text in a text/plain body" and a generator would send non-JSON text). Chat completions take
  OpenAI's request object (the fields the service accepts; `content` is documented as a string, the
  array of parts is in the description, as Swagger 2.0 has no `oneOf`). Vision requests take their JSON
  object; `multipart/form-data` is accepted too but described only in words (Swagger 2.0 cannot list a
  body and form fields for one operation). A restore takes an export as produced by `/admin/backup`.
  The request's other unbound fields become query parameters, as the transcoder maps them (the plugin
  leaves them out when the body is a field).
- `google.api.HttpBody` responses are documented by what the service writes into them: bare JSON arrays
  for `/_spark/kv` and `/_spark/db`, any JSON for a KV value, OpenAI's completion object (or its SSE
  stream when the body says `"stream": true`), the export object, and `text/event-stream` for streams.
- `google.protobuf.Struct json` bodies (the prompts routes, which parse the body strictly themselves)
  are documented as the request message's own typed fields, unknown fields refused.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Imported for its side effect too: the `google.api.http` extension must be known to parse it.
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from edge.routes import HttpRoute, route_for_path
from services.access.methods import EXTENSION as POLICY
from tools import protogen

Json = dict[str, Any]
FD = descriptor_pb2.FieldDescriptorProto

OUTPUT = protogen.ROOT / "docs" / "openapi" / "spark.swagger.json"
PLUGIN = "protoc-gen-swagger"
REF = "#/definitions/"
ERROR = "ErrorBody"
OPENAI_ERROR = "OpenAIErrorBody"
ANTHROPIC_ERROR = "AnthropicErrorBody"
JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream"
HTTP_BODY = "google.api.HttpBody"
STRUCT = "google.protobuf.Struct"
# The Struct field through which the prompts routes take their whole JSON body.
STRICT_BODY_FIELD = "json"

ERROR_RESPONSES: dict[int, str] = {
    400: "The path, query or body is invalid (INVALID_ARGUMENT, FAILED_PRECONDITION), or Envoy refused the request.",
    401: "The API key or `X-Admin-Token` is missing or wrong (UNAUTHENTICATED).",
    403: "The caller may not do this, or admin routes are disabled: the suite has no `ADMIN_TOKEN`.",
    404: "No such resource (NOT_FOUND), or no route for this method and path.",
    409: "The resource exists already, or a concurrent change won (ALREADY_EXISTS, ABORTED).",
    413: "The body is over the route's size limit.",
    428: "The route requires an `X-Nonce` header.",
    429: "A rate limit or quota is exhausted (RESOURCE_EXHAUSTED); `Retry-After` says when to retry.",
    431: "The request headers are too large or too many.",
    503: "A service, a provider or the store is unavailable; retry (UNAVAILABLE).",
    504: "The request did not finish in time (DEADLINE_EXCEEDED).",
}

ERROR_SCHEMA: Json = {
    "type": "object",
    "description": (
        "Every non-2xx answer of the edge: a service's `google.rpc.Status` as the transcoder prints it "
        "(`code` is the gRPC code), access refusals included, or Envoy's own reply in the same shape."
    ),
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "integer", "description": "The gRPC status code (the HTTP status for Envoy's rarer replies)."},
        "message": {"type": "string", "description": "What went wrong, for a person to read."},
        "details": {
            "type": "array",
            "description": "`google.rpc` details (`ErrorInfo`, `BadRequest`, `RetryInfo`), each with its `@type`.",
            "items": {"type": "object", "required": ["@type"], "properties": {"@type": {"type": "string"}}},
        },
    },
}

OPENAI_ERROR_SCHEMA: Json = {
    "type": "object",
    "description": "An error on the OpenAI-compatible routes, in OpenAI's shape (the official SDKs read it).",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "description": "invalid_request_error, authentication_error, ..."},
                "param": {"type": "string", "x-nullable": True, "description": "The first field at fault."},
                "code": {"type": "string", "x-nullable": True, "description": "The reason, in lower case."},
            },
        }
    },
}

ANTHROPIC_ERROR_SCHEMA: Json = {
    "type": "object",
    "description": "An error on /v1/messages, in Anthropic's shape (the official SDK reads it).",
    "required": ["type", "error"],
    "properties": {
        "type": {"type": "string", "enum": ["error"]},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
# The error body's definition for each route's error format (edge/routes.py).
ERROR_BODIES: dict[str, str] = {"suite": ERROR, "openai": OPENAI_ERROR, "anthropic": ANTHROPIC_ERROR}

SECURITY_DEFINITIONS: Json = {
    "AdminToken": {"type": "apiKey", "in": "header", "name": "X-Admin-Token", "description": "The `ADMIN_TOKEN`."},
    "BearerKey": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Bearer <API key>`; development mode needs no key.",
    },
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": "An API key; development mode needs no key.",
    },
}
KEY_SECURITY: list[Json] = [{"BearerKey": []}, {"ApiKey": []}]
ADMIN_SECURITY: list[Json] = [{"AdminToken": []}]

_TEXT: Json = {"type": "string"}
_ANY_JSON: Json = {"description": "Any JSON value."}

KV_VALUE: Json = {"description": "The value's JSON text: any JSON value, stored and returned byte for byte."}

TOOL_NAME: Json = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
TOOL_CALL: Json = {
    "type": "object",
    "required": ["id", "type", "function"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 256},
        "type": {"type": "string", "enum": ["function"]},
        "function": {
            "type": "object",
            "required": ["name", "arguments"],
            "additionalProperties": False,
            "properties": {"name": TOOL_NAME, "arguments": {"type": "string", "description": "A JSON object's text."}},
        },
    },
}

CHAT_MESSAGE: Json = {
    "type": "object",
    "required": ["role", "content"],
    "additionalProperties": False,
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {
            "type": "string",
            "description": (
                'The text, or an array of parts: `{"type": "text", "text": ...}` and '
                '`{"type": "image_url", "image_url": {"url": "<http(s) or data:image URL>", "detail": ...}}`; '
                "null for an assistant message that only calls tools."
            ),
        },
        "name": _TEXT,
        "tool_calls": {"type": "array", "minItems": 1, "maxItems": 128, "items": TOOL_CALL},
        "tool_call_id": {"type": "string", "minLength": 1, "maxLength": 256, "description": "A tool message's call."},
    },
}

CHAT_TOOL: Json = {
    "type": "object",
    "required": ["type", "function"],
    "additionalProperties": False,
    "properties": {
        "type": {"type": "string", "enum": ["function"]},
        "function": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": TOOL_NAME,
                "description": {"type": "string", "maxLength": 16384},
                "parameters": {"type": "object", "description": "The arguments' JSON Schema."},
                "strict": {"type": "boolean"},
            },
        },
    },
}

CHAT_REQUEST: Json = {
    "type": "object",
    "description": "OpenAI's chat-completions request; unknown and unsupported fields (audio, logprobs) are refused.",
    "required": ["messages"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string", "description": "A model id or alias; empty means DEFAULT_MODEL."},
        "messages": {"type": "array", "minItems": 1, "items": CHAT_MESSAGE},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "stop": {"type": "array", "maxItems": 4, "items": {"type": "string", "minLength": 1}},
        "response_format": {
            "type": "object",
            "required": ["type"],
            "description": (
                "`json_object`: the answer is a JSON object; `json_schema` (`json_schema: {name, schema, strict}`): "
                "the answer is valid against the schema, or the request fails with 503 MODEL_OUTPUT_INVALID."
            ),
            "properties": {
                "type": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
                "json_schema": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": TOOL_NAME,
                        "schema": {"type": "object"},
                        "strict": {"type": "boolean"},
                        "description": _TEXT,
                    },
                },
            },
        },
        "tools": {"type": "array", "minItems": 1, "maxItems": 128, "items": CHAT_TOOL},
        "tool_choice": {
            "description": '`"auto"`, `"none"`, `"required"` or `{"type": "function", "function": {"name": ...}}`.'
        },
        "seed": {"type": "integer"},
        "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "n": {"type": "integer", "enum": [1]},
        "stream": {"type": "boolean", "description": "True answers Server-Sent Events of chunks."},
        "stream_options": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"include_usage": {"type": "boolean"}},
        },
        "user": {"type": "string", "maxLength": 256},
        "metadata": {"type": "object"},
        "store": {"type": "boolean"},
        "parallel_tool_calls": {"type": "boolean"},
    },
}

TOKEN_USAGE: Json = {
    "type": "object",
    "properties": {
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "total_tokens": {"type": "integer"},
    },
}

CHAT_COMPLETION: Json = {
    "type": "object",
    "description": "OpenAI's `chat.completion` object (Server-Sent Events of chunks when the body asks for a stream).",
    "required": ["id", "object", "created", "model", "choices"],
    "properties": {
        "id": _TEXT,
        "object": {"type": "string", "enum": ["chat.completion"]},
        "created": {"type": "integer"},
        "model": _TEXT,
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "message": {
                        "type": "object",
                        "properties": {
                            "role": _TEXT,
                            "content": {"type": "string", "description": "Null when the answer only calls tools."},
                            "tool_calls": {"type": "array", "items": TOOL_CALL},
                        },
                    },
                    "finish_reason": _TEXT,
                },
            },
        },
        "usage": TOKEN_USAGE,
    },
}

EMBEDDINGS_REQUEST: Json = {
    "type": "object",
    "description": "OpenAI's embeddings request; unknown fields and token arrays are refused.",
    "required": ["model", "input"],
    "additionalProperties": False,
    "properties": {
        "model": {
            "type": "string",
            "minLength": 1,
            "description": "`<provider>/<model id>` of an OpenAI-protocol provider, or an OpenAI model id.",
        },
        "input": {
            "oneOf": [
                {"type": "string", "minLength": 1, "maxLength": 32768},
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 2048,
                    "items": {"type": "string", "minLength": 1, "maxLength": 32768},
                },
            ]
        },
        "dimensions": {"type": "integer", "minimum": 1, "maximum": 65536},
        "encoding_format": {"type": "string", "enum": ["float", "base64"]},
        "user": {"type": "string", "maxLength": 256},
    },
}

EMBEDDINGS: Json = {
    "type": "object",
    "description": "OpenAI's list of `embedding` objects, one per input in input order.",
    "required": ["object", "data", "model", "usage"],
    "properties": {
        "object": {"type": "string", "enum": ["list"]},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "object": {"type": "string", "enum": ["embedding"]},
                    "index": {"type": "integer"},
                    "embedding": {
                        "description": "Floats, or base64 of little-endian float32 for `encoding_format: base64`.",
                        "oneOf": [{"type": "array", "items": {"type": "number"}}, _TEXT],
                    },
                },
            },
        },
        "model": _TEXT,
        "usage": {
            "type": "object",
            "properties": {"prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}},
        },
    },
}

VISION_REQUEST: Json = {
    "type": "object",
    "description": (
        "One image (exactly one of `image_url` and `image_base64`) and the prompt: `prompt`, `prompt_id`, or "
        "the default of (`namespace`, `lang`). The same fields are accepted as `multipart/form-data`, the "
        "image as a file part."
    ),
    "additionalProperties": False,
    "properties": {
        "provider": {"type": "string", "description": "Restricts the call to this provider."},
        "model": {"type": "string", "description": "A model id or alias; empty means the provider's vision model."},
        "prompt": {"type": "string", "minLength": 1, "maxLength": 20000},
        "prompt_id": {"type": "integer", "minimum": 1},
        "namespace": _TEXT,
        "lang": _TEXT,
        "variables": {
            "type": "object",
            "maxProperties": 64,
            "additionalProperties": {"type": "string"},
            "description": "Values for the prompt's `{{name}}` placeholders.",
        },
        "image_url": {"type": "string", "description": "An http(s) URL or a `data:image/...;base64,` URL."},
        "image_base64": {"type": "string", "format": "byte", "description": "A JPEG, PNG, WebP or GIF image."},
        "max_tokens": {"type": "integer", "minimum": 0},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    },
}

PROMPTS_EXPORT: Json = {
    "type": "object",
    "description": "Every prompt, as `/admin/backup` exports them.",
    "required": ["count", "prompts"],
    "additionalProperties": False,
    "properties": {
        "exported_at": {"type": "string", "format": "date-time"},
        "count": {"type": "integer", "description": "How many prompts `prompts` holds."},
        "format_version": {"type": "integer", "enum": [1]},
        "prompts": {"type": "array", "items": {"$ref": REF + "spark.prompts.v1.Prompt"}},
    },
}

# No type: Swagger 2.0 has no schema for an event stream, and a string would not describe its events.
ANTHROPIC_BLOCKS: Json = {
    "description": (
        "A string, or an array of content blocks: `text`, `image` (a `base64` or `url` source) and `tool_result` "
        "in user turns; `text` and `tool_use` in assistant turns."
    )
}

MESSAGES_REQUEST: Json = {
    "type": "object",
    "description": (
        "Anthropic's Messages API request, for every model the gateway serves; unknown and unsupported fields "
        "(thinking, top_k, server tools) are refused."
    ),
    "required": ["model", "max_tokens", "messages"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "max_tokens": {"type": "integer", "minimum": 1},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "additionalProperties": False,
                "properties": {"role": {"type": "string", "enum": ["user", "assistant"]}, "content": ANTHROPIC_BLOCKS},
            },
        },
        "system": {"description": "A string or an array of text blocks."},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "stop_sequences": {"type": "array", "maxItems": 4, "items": {"type": "string", "minLength": 1}},
        "stream": {"type": "boolean", "description": "True answers Server-Sent Events with Anthropic's event names."},
        "metadata": {"type": "object", "additionalProperties": False, "properties": {"user_id": _TEXT}},
        "tools": {
            "type": "array",
            "maxItems": 128,
            "items": {
                "type": "object",
                "required": ["name", "input_schema"],
                "additionalProperties": False,
                "properties": {
                    "type": {"type": "string", "enum": ["custom"]},
                    "name": TOOL_NAME,
                    "description": {"type": "string", "maxLength": 16384},
                    "input_schema": {"type": "object"},
                },
            },
        },
        "tool_choice": {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {"type": "string", "enum": ["auto", "any", "tool", "none"]},
                "name": TOOL_NAME,
                "disable_parallel_tool_use": {"type": "boolean"},
            },
        },
        "output_config": {
            "type": "object",
            "description": 'Structured output: `{"format": {"type": "json_schema", "schema": {...}}}`.',
        },
        "service_tier": {"type": "string", "enum": ["auto", "standard_only"]},
    },
}

MESSAGE: Json = {
    "type": "object",
    "description": "Anthropic's `message` object (Server-Sent Events when the body asks for a stream).",
    "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
    "properties": {
        "id": _TEXT,
        "type": {"type": "string", "enum": ["message"]},
        "role": {"type": "string", "enum": ["assistant"]},
        "model": _TEXT,
        "content": {"type": "array", "items": {"type": "object", "description": "A `text` or `tool_use` block."}},
        "stop_reason": {"type": "string", "enum": ["end_turn", "max_tokens", "tool_use", "refusal"]},
        "stop_sequence": {"type": "string"},
        "usage": {
            "type": "object",
            "properties": {"input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"}},
        },
    },
}

ANTHROPIC_EVENT_STREAM: Json = {
    "description": (
        "Server-Sent Events with Anthropic's names: `message_start`, `content_block_start`, "
        "`content_block_delta`, `content_block_stop`, `message_delta`, `message_stop`; a failure as an `error` event."
    )
}

EVENT_STREAM: Json = {
    "description": "Server-Sent Events: `data: {json}` blocks, then `data: [DONE]`; an error as a last `data:` event."
}


@dataclass(frozen=True, slots=True)
class RawBody:
    """What a `google.api.HttpBody` request or response really carries."""

    schema: Json
    media_types: tuple[str, ...] = (JSON_TYPE,)


# By RPC, "package.Service.Method".
RAW_REQUESTS: dict[str, RawBody] = {
    "spark.kv.v1.KvService.SetSparkValue": RawBody(KV_VALUE),
    "spark.llm.v1.LlmService.CreateChatCompletion": RawBody(CHAT_REQUEST),
    "spark.llm.v1.LlmService.StreamChatCompletion": RawBody(CHAT_REQUEST),
    "spark.llm.v1.LlmService.CreateEmbeddings": RawBody(EMBEDDINGS_REQUEST),
    "spark.llm.v1.LlmService.CreateMessage": RawBody(MESSAGES_REQUEST),
    "spark.llm.v1.LlmService.StreamMessage": RawBody(MESSAGES_REQUEST),
    "spark.vision.v1.VisionService.Analyze": RawBody(VISION_REQUEST),
    "spark.vision.v1.VisionService.StreamAnalyze": RawBody(VISION_REQUEST),
    "spark.prompts.v1.PromptsService.RestorePrompts": RawBody(PROMPTS_EXPORT),
}
RAW_RESPONSES: dict[str, RawBody] = {
    "spark.kv.v1.KvService.ListSparkKeys": RawBody({"type": "array", "items": _TEXT}),
    "spark.kv.v1.KvService.GetSparkValue": RawBody(KV_VALUE),
    "spark.kv.v1.KvService.ListSparkCollection": RawBody(
        {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "value"],
                "properties": {"key": _TEXT, "value": {"type": "string", "description": "The stored JSON text."}},
            },
        }
    ),
    "spark.llm.v1.LlmService.CreateChatCompletion": RawBody(CHAT_COMPLETION, (JSON_TYPE, SSE_TYPE)),
    "spark.llm.v1.LlmService.StreamChatCompletion": RawBody(EVENT_STREAM, (SSE_TYPE, JSON_TYPE)),
    "spark.llm.v1.LlmService.CreateEmbeddings": RawBody(EMBEDDINGS),
    "spark.llm.v1.LlmService.CreateMessage": RawBody(MESSAGE, (JSON_TYPE, SSE_TYPE)),
    "spark.llm.v1.LlmService.StreamMessage": RawBody(ANTHROPIC_EVENT_STREAM, (SSE_TYPE, JSON_TYPE)),
    "spark.prompts.v1.PromptsService.ExportPrompts": RawBody(PROMPTS_EXPORT),
    "spark.vision.v1.VisionService.StreamAnalyze": RawBody(EVENT_STREAM, (SSE_TYPE, JSON_TYPE)),
    "spark.access.v1.AccessService.StartSignIn": RawBody(
        {"description": "A 302 to GitHub's authorization page (`Location`), the sign-in's state cookie set."}
    ),
    "spark.access.v1.AccessService.FinishSignIn": RawBody(
        {"description": "A 302 to the sign-in's `return_to`, the `spark_session` cookie set (HttpOnly, SameSite=Lax)."}
    ),
    "spark.access.v1.AccessService.SignOut": RawBody(
        {
            "type": "object",
            "description": "The session ended and its cookie cleared; a 302 to `return_to` when one is given.",
            "properties": {"signedIn": {"type": "boolean", "enum": [False]}},
        }
    ),
    "spark.access.v1.AccessService.OpenPage": RawBody(
        {"type": "string", "description": "The app's index.html, or a 302 to /_spark/auth/login without a session."},
        ("text/html", JSON_TYPE),
    ),
}
# Headers of the contract that are no proto field.
HEADER_PARAMETERS: dict[str, list[Json]] = {
    "spark.kv.v1.KvService.SetSparkValue": [
        {
            "name": "X-Spark-Initial",
            "in": "header",
            "required": False,
            "type": "string",
            "enum": ["true", "false"],
            "description": "`true` writes the value only if the key is absent.",
        }
    ],
}
# Statuses a service sets itself through `x-http-status`, by RPC: the success status, and extra responses.
SUCCESS_STATUS: dict[str, str] = {"spark.prompts.v1.PromptsService.CreatePrompt": "201"}
EXTRA_RESPONSES: dict[str, dict[str, Json]] = {
    "spark.meta.v1.MetaService.GetHealth": {
        "503": {"description": "A service is unhealthy.", "schema": {"$ref": REF + "spark.meta.v1.GetHealthResponse"}}
    },
}


@dataclass(frozen=True, slots=True)
class Binding:
    """One HTTP binding of one RPC, from its `google.api.http` rule."""

    rpc: str
    verb: str
    path: str
    body: str
    input_type: str
    # The RPC's access policy (its `spark.policy.v1.policy` option).
    admin: bool
    public: bool


class ProtoIndex:
    """Messages, enums, comments and HTTP bindings of a descriptor set."""

    def __init__(self, file_set: descriptor_pb2.FileDescriptorSet) -> None:
        self.files = list(file_set.file)
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        # Leading comments of message fields, by (message, field).
        self.comments: dict[tuple[str, str], str] = {}
        self.bindings: dict[tuple[str, str], Binding] = {}
        for file in self.files:
            located = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}
            for index, message in enumerate(file.message_type):
                self._add_message(file.package, message, (4, index), located)
            for enum in file.enum_type:
                self.enums[f"{file.package}.{enum.name}"] = enum
            for service in file.service:
                for method in service.method:
                    self._add_bindings(f"{file.package}.{service.name}", method)

    def _add_message(
        self, scope: str, message: descriptor_pb2.DescriptorProto, path: tuple[int, ...], located: dict[Any, str]
    ) -> None:
        name = f"{scope}.{message.name}"
        self.messages[name] = message
        for index, field in enumerate(message.field):
            self.comments[(name, field.name)] = " ".join(located.get((*path, 2, index), "").split())
        for index, nested in enumerate(message.nested_type):
            self._add_message(name, nested, (*path, 3, index), located)
        for enum in message.enum_type:
            self.enums[f"{name}.{enum.name}"] = enum

    def _add_bindings(self, service: str, method: descriptor_pb2.MethodDescriptorProto) -> None:
        if not method.options.HasExtension(annotations_pb2.http):
            return
        rpc = f"{service}.{method.name}"
        policy = method.options.Extensions[POLICY]
        for verb, path, body in _rules(method.options.Extensions[annotations_pb2.http]):
            self.bindings[(verb, path)] = Binding(
                rpc, verb, path, body, method.input_type.lstrip("."), policy.admin, policy.public
            )

    def swagger_names(self) -> dict[str, str]:
        """The plugin's definition name -> the full proto name, by the plugin's own naming rule: the
        shortest suffix of the full name's parts that no other message or enum shares, plus one part."""
        names = [f".{name}" for name in (*self.messages, *self.enums)]
        suffixes: dict[tuple[str, ...], int] = {}
        for name in names:
            parts = name.split(".")
            for depth in range(len(parts)):
                key = tuple(parts[len(parts) - depth :])
                suffixes[key] = suffixes.get(key, 0) + 1
        plugin_names: dict[str, str] = {}
        for name in names:
            parts = name.split(".")
            chosen = "".join(parts)
            for depth in range(len(parts)):
                if suffixes[tuple(parts[len(parts) - depth :])] == 1:
                    chosen = "".join(parts[len(parts) - depth - 1 :])
                    break
            plugin_names[chosen] = name.lstrip(".")
        return plugin_names


def _rules(rule: http_pb2.HttpRule) -> Iterator[tuple[str, str, str]]:
    pattern = rule.WhichOneof("pattern")
    if pattern == "custom":
        yield rule.custom.kind.lower(), rule.custom.path, rule.body
    elif pattern is not None:
        yield pattern, getattr(rule, pattern), rule.body
    for binding in rule.additional_bindings:
        yield from _rules(binding)


def edge_route(path: str) -> HttpRoute:
    """The edge's route class that serves a path template."""
    route = route_for_path(path)
    if route is None:
        raise SystemExit(f"no route in edge/routes.py serves {path}: add one, or drop the path's http rule")
    return route


def _descriptor_set(work_dir: Path) -> descriptor_pb2.FileDescriptorSet:
    protogen.generate(work_dir)
    return descriptor_pb2.FileDescriptorSet.FromString((work_dir / protogen.DESCRIPTOR_PATH).read_bytes())


def _without_proto3_optional(file_set: descriptor_pb2.FileDescriptorSet) -> list[descriptor_pb2.FileDescriptorProto]:
    """The files with every proto3 `optional` made a plain field, and the synthetic oneofs it adds removed."""

    def plain(message: descriptor_pb2.DescriptorProto) -> None:
        synthetic = set()
        for field in message.field:
            if field.proto3_optional:
                synthetic.add(field.oneof_index)
                field.ClearField("proto3_optional")
                field.ClearField("oneof_index")
        if synthetic:
            # Synthetic oneofs come after the real ones, so the real ones keep their indexes.
            kept = [oneof for index, oneof in enumerate(message.oneof_decl) if index not in synthetic]
            del message.oneof_decl[:]
            message.oneof_decl.extend(kept)
        for nested in message.nested_type:
            plain(nested)

    files = [copy.deepcopy(file) for file in file_set.file]
    for file in files:
        for message in file.message_type:
            plain(message)
    return files


def _plugin_path() -> str:
    path = shutil.which(PLUGIN)
    if path is None:
        raise SystemExit(f"{PLUGIN} is missing: install Debian golang-grpc-gateway (`make test-deps`)")
    return path


def run_plugin(files: list[descriptor_pb2.FileDescriptorProto], target: str, *, camel_case: bool) -> Json:
    """The plugin's Swagger document for one proto file."""
    request = plugin_pb2.CodeGeneratorRequest(
        file_to_generate=[target],
        parameter="json_names_for_fields=true" if camel_case else "",
        proto_file=files,
    )
    result = subprocess.run(
        [_plugin_path()], input=request.SerializeToString(), capture_output=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise SystemExit(f"{PLUGIN} failed on {target}: {result.stderr.decode(errors='replace')}")
    response = plugin_pb2.CodeGeneratorResponse.FromString(result.stdout)
    if response.error:
        raise SystemExit(f"{PLUGIN} failed on {target}: {response.error}")
    (output,) = response.file
    document: Json = json.loads(output.content)
    return document


def _renamed_refs(node: Any, names: dict[str, str]) -> Any:
    """The node with every `$ref` to a plugin definition name pointing at the full proto name."""
    if isinstance(node, dict):
        renamed = {key: _renamed_refs(value, names) for key, value in node.items()}
        ref = renamed.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF):
            name = ref.removeprefix(REF)
            renamed["$ref"] = REF + names.get(name, name)
        return renamed
    if isinstance(node, list):
        return [_renamed_refs(item, names) for item in node]
    return node


def _scalar_schema(field: descriptor_pb2.FieldDescriptorProto) -> Json:
    """A field's proto3 JSON type (64-bit integers are strings in proto3 JSON)."""
    scalar: dict[int, Json] = {
        FD.TYPE_STRING: {"type": "string"},
        FD.TYPE_BOOL: {"type": "boolean"},
        FD.TYPE_BYTES: {"type": "string", "format": "byte"},
        FD.TYPE_DOUBLE: {"type": "number", "format": "double"},
        FD.TYPE_FLOAT: {"type": "number", "format": "float"},
        FD.TYPE_INT32: {"type": "integer", "format": "int32"},
        FD.TYPE_SINT32: {"type": "integer", "format": "int32"},
        FD.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
        FD.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
        FD.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    }
    if field.type in scalar:
        return dict(scalar[field.type])
    if field.type in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64, FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return {"type": "string", "format": "int64"}
    raise SystemExit(f"field {field.name}: no JSON schema for proto type {field.type}")


# Well-known types print as plain JSON, not as messages.
WELL_KNOWN_JSON: dict[str, Json] = {
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    STRUCT: {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
}


def _path_fields(path: str) -> set[str]:
    """The fields a path template binds: `{id}` and `{name=things/*}` alike."""
    return {part.strip("{}").split("=")[0] for part in path.split("/") if part.startswith("{")}


def _field_schema(index: ProtoIndex, field: descriptor_pb2.FieldDescriptorProto) -> Json:
    type_name = field.type_name.lstrip(".")
    if field.type == FD.TYPE_ENUM:
        enum = index.enums[type_name]
        single: Json = {"type": "string", "enum": [value.name for value in enum.value]}
    elif field.type == FD.TYPE_MESSAGE:
        if index.messages[type_name].options.map_entry:
            value_field = next(f for f in index.messages[type_name].field if f.name == "value")
            return {"type": "object", "additionalProperties": _field_schema(index, value_field)}
        single = dict(WELL_KNOWN_JSON.get(type_name, {"$ref": REF + type_name}))
    else:
        single = _scalar_schema(field)
    if field.label == FD.LABEL_REPEATED:
        return {"type": "array", "items": single}
    return single


def strict_body_schema(index: ProtoIndex, binding: Binding, *, camel_case: bool) -> Json:
    """The typed fields of a request whose HTTP body arrives whole in a Struct and is parsed strictly."""
    message = index.messages[binding.input_type]
    path_fields = _path_fields(binding.path)
    properties: Json = {}
    for field in message.field:
        if field.name in path_fields or field.name == binding.body:
            continue
        schema = _field_schema(index, field)
        comment = index.comments.get((binding.input_type, field.name), "")
        if comment and "$ref" not in schema:
            schema["description"] = comment
        properties[field.json_name if camel_case else field.name] = schema
    return {"type": "object", "additionalProperties": False, "properties": properties}


def _query_parameters(index: ProtoIndex, binding: Binding) -> list[Json]:
    """The scalar fields a request binds from the query next to a raw body (the plugin omits them)."""
    message = index.messages[binding.input_type]
    bound = _path_fields(binding.path)
    parameters = []
    for field in message.field:
        if field.name in bound or field.name == binding.body or field.type in (FD.TYPE_MESSAGE, FD.TYPE_GROUP):
            continue
        parameter: Json = {"name": field.name, "in": "query", "required": False, **_field_schema(index, field)}
        if comment := index.comments.get((binding.input_type, field.name)):
            parameter["description"] = comment
        parameters.append(parameter)
    return parameters


def _body_field_type(index: ProtoIndex, binding: Binding) -> str:
    field = next(f for f in index.messages[binding.input_type].field if f.name == binding.body)
    return field.type_name.lstrip(".")


def _error_responses(route: HttpRoute) -> Json:
    schema = {"$ref": REF + ERROR_BODIES[route.error_format]}
    return {str(status): {"description": text, "schema": schema} for status, text in ERROR_RESPONSES.items()}


def _operation(index: ProtoIndex, binding: Binding, route: HttpRoute, operation: Json) -> Json:
    """One plugin operation with the raw bodies, strict bodies, statuses, errors and security of the edge."""
    operation = copy.deepcopy(operation)
    parameters: list[Json] = operation.get("parameters", [])
    if binding.body and binding.body != "*":
        body_type = _body_field_type(index, binding)
        body = next(p for p in parameters if p["in"] == "body")
        if body_type == HTTP_BODY:
            raw = RAW_REQUESTS.get(binding.rpc)
            if raw is None:
                raise SystemExit(f"{binding.rpc} takes a raw body: describe it in RAW_REQUESTS")
            body["schema"] = raw.schema
            operation["consumes"] = list(raw.media_types)
            parameters += _query_parameters(index, binding)
        elif body_type == STRUCT and binding.body == STRICT_BODY_FIELD:
            body["schema"] = strict_body_schema(index, binding, camel_case=not route.snake_case)
            body["description"] = (
                "The request's fields as one JSON object, parsed strictly: unknown fields are refused."
            )
    parameters += HEADER_PARAMETERS.get(binding.rpc, [])
    if parameters:
        operation["parameters"] = parameters
    responses = operation["responses"]
    success = responses.pop("200")
    raw_response = RAW_RESPONSES.get(binding.rpc)
    if raw_response is not None:
        success["schema"] = raw_response.schema
        operation["produces"] = list(raw_response.media_types)
    elif success.get("schema", {}).get("$ref") == REF + HTTP_BODY:
        raise SystemExit(f"{binding.rpc} answers a raw body: describe it in RAW_RESPONSES")
    responses[SUCCESS_STATUS.get(binding.rpc, "200")] = success
    responses.update(_error_responses(route))
    responses.update(EXTRA_RESPONSES.get(binding.rpc, {}))
    if binding.admin:
        operation["security"] = ADMIN_SECURITY
    elif binding.public:
        operation["security"] = []
    else:
        operation["security"] = KEY_SECURITY
    return operation


def _uses_proto_json(binding: Binding, index: ProtoIndex) -> bool:
    """Whether the plugin's schemas describe this operation's request or response JSON (rather than only
    hand-written raw bodies)."""
    typed_request = binding.body == "*" or (binding.body != "" and _body_field_type(index, binding) != HTTP_BODY)
    return typed_request or binding.rpc not in RAW_RESPONSES


def _referenced(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith(REF):
                raise SystemExit(f"{ref} is not a definition: the plugin's stream definitions are not merged")
            yield ref.removeprefix(REF)
        for value in node.values():
            yield from _referenced(value)
    elif isinstance(node, list):
        for item in node:
            yield from _referenced(item)


def _reachable(paths: Json, definitions: dict[str, list[Json]]) -> Json:
    """Only the definitions the operations reach, sorted by name; each must print one way."""
    reached: Json = {}
    pending = list(_referenced(paths))
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        variants = definitions.get(name)
        if not variants:
            raise SystemExit(f"#/definitions/{name} is referenced but not defined")
        if len(variants) > 1:
            raise SystemExit(f"{name} prints in snake_case and in camelCase on different routes: split it by route")
        reached[name] = variants[0]
        pending.extend(_referenced(variants[0]))
    return {name: reached[name] for name in sorted(reached)}


def build(work_dir: Path) -> Json:
    """The whole Swagger document; `work_dir` holds the intermediate descriptor set."""
    file_set = _descriptor_set(work_dir)
    index = ProtoIndex(file_set)
    names = index.swagger_names()
    plain_files = _without_proto3_optional(file_set)
    paths: Json = {}
    # Every way a message prints: one unless files of both casings use it.
    definitions: dict[str, list[Json]] = {}
    for target in protogen.proto_files():
        file = next(f for f in index.files if f.name == target)
        routes = {
            binding: edge_route(binding.path)
            for binding in index.bindings.values()
            if binding.rpc.startswith(file.package + ".")
        }
        casings = {route.snake_case for binding, route in routes.items() if _uses_proto_json(binding, index)}
        if len(casings) > 1:
            raise SystemExit(f"{target} has routes in snake_case and in camelCase: split the generation by route")
        camel_case = casings == {False}
        document = _renamed_refs(run_plugin(plain_files, target, camel_case=camel_case), names)
        for name, definition in document.get("definitions", {}).items():
            full_name = names.get(name)
            if full_name is None:
                raise SystemExit(f"{PLUGIN} named a definition {name!r}, which no proto message or enum gets here")
            variants = definitions.setdefault(full_name, [])
            if definition not in variants:
                variants.append(definition)
        for path, operations in document.get("paths", {}).items():
            for verb, operation in operations.items():
                binding = index.bindings[(verb, path)]
                if verb in paths.get(path, {}):
                    raise SystemExit(f"{verb.upper()} {path} is bound by two RPCs")
                paths.setdefault(path, {})[verb] = _operation(index, binding, routes[binding], operation)
    definitions[ERROR] = [ERROR_SCHEMA]
    definitions[OPENAI_ERROR] = [OPENAI_ERROR_SCHEMA]
    definitions[ANTHROPIC_ERROR] = [ANTHROPIC_ERROR_SCHEMA]
    return {
        "swagger": "2.0",
        "info": {
            "title": "Spark services",
            "version": "v1",
            "description": (
                "The HTTP routes of the Spark services suite's edge, generated from the protos' "
                "`google.api.http` rules by `python -m tools.openapi`. Do not edit."
            ),
        },
        "schemes": ["http", "https"],
        "consumes": [JSON_TYPE],
        "produces": [JSON_TYPE],
        "securityDefinitions": SECURITY_DEFINITIONS,
        "paths": {path: paths[path] for path in sorted(paths)},
        "definitions": _reachable(paths, definitions),
    }


def render(document: Json) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def generate(out: Path) -> None:
    """Writes the document to `out`."""
    with tempfile.TemporaryDirectory() as tmp:
        text = render(build(Path(tmp)))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


def drift() -> list[str]:
    """A unified diff of the committed file against a fresh generation; empty when they match."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / OUTPUT.name
        generate(fresh)
        new = fresh.read_text(encoding="utf-8").splitlines(keepends=True)
    old = OUTPUT.read_text(encoding="utf-8").splitlines(keepends=True) if OUTPUT.exists() else []
    return list(difflib.unified_diff(old, new, str(OUTPUT.relative_to(protogen.ROOT)), "generated"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file is not up to date")
    args = parser.parse_args()
    if args.check:
        diff = drift()
        if diff:
            sys.stderr.writelines(diff[:200])
            sys.stderr.write(f"\n{OUTPUT} is out of date: run `python -m tools.openapi`\n")
            raise SystemExit(1)
        return
    generate(OUTPUT)
    sys.stderr.write(f"wrote {OUTPUT}\n")


if __name__ == "__main__":
    main()
