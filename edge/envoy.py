"""Renders the Envoy configuration of the edge from its settings.

The structure below is the template; `EdgeSettings` fills in ports, upstream
addresses, limits and origins. Filter order (requests top to bottom,
responses bottom to top): cors -> header_mutation -> head_as_get -> buffer -> lua
-> grpc_json_transcoder -> router.

The edge decides nothing about who may call what: every service admits the calls
it serves itself (services/access/checkpoint.py), so a request costs one Python
hop. The edge passes the client's credentials on, and shows the services the
suite's internal token with the address of the client it accepted; a client's
own internal headers are removed (services/access/internal.py).

A hosted Spark app's files (SPARK_APP_DIR) are Envoy's own answers, with no hop at all: routes after the
API's (edge/app_routes.py) from a snapshot taken at start (edge/static.py).
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from edge.app_routes import app_routes, direct_body_limit, open_page_lua, status_route
from edge.routes import (
    APP_PREFIX,
    DIRECT_REPLIES,
    GRPC_SERVICES,
    HTTP_ROUTES,
    TRANSCODED_SERVICES,
    DirectReply,
    ErrorFormat,
    HttpRoute,
    route_for_path,
)
from edge.settings import EdgeSettings, Upstream
from services.access.gate import API_KEY_OR_ADMIN_TOKEN_REQUIRED, CREDENTIAL_HEADERS
from services.access.internal import INTERNAL_HEADERS
from services.access.methods import method_policies
from services.common.descriptors import load_pool
from services.common.identity import CLIENT_ADDRESS_HEADER, INTERNAL_HEADER
from services.common.routes import http_routes

Json = dict[str, Any]
EDGE_ERROR_DOMAIN = "edge.spark"
UNAUTHENTICATED = 16

TYPE = "type.googleapis.com/"
TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
LUA = "envoy.filters.http.lua"
# A second Lua filter, which keeps the route it was entered with (see HEAD_AS_GET_LUA).
HEAD_AS_GET = "spark.head_as_get"
HEADER_MUTATION = "envoy.filters.http.header_mutation"
RBAC = "envoy.filters.http.rbac"
BUFFER = "envoy.filters.http.buffer"
CORS = "envoy.filters.http.cors"
ADMIN_CLUSTER = "envoy_admin"
HCM = "envoy.filters.network.http_connection_manager"
HCM_TYPE = TYPE + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_FILTER: dict[str, Any] = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.router.v3.Router"},
}
HSTS = "max-age=31536000; includeSubDomains"
JSON_CONTENT_TYPE = "application/json"
# The largest export the edge passes on whatever the restore limit (the prompts service sends as much).
EXPORT_MAX_BYTES = 64 * 1024 * 1024
# Envoy's defaults, which clients meet at the door (431). They also bound the request once the edge has added
# its own headers, which a request just under them can then pass (see _local_reply_config).
MAX_REQUEST_HEADERS = 100
MAX_REQUEST_HEADERS_KB = 60
ORIGINAL_METHOD_HEADER = "x-spark-original-method"
# Request headers the transcoder would pass on as metadata that a gRPC service refuses, failing the call as
# INTERNAL (an HTTP 500): names with characters HTTP allows but gRPC does not (a leading ':' marks Envoy's
# pseudo-headers), binary `-bin` headers that are not base64, and gRPC's own `grpc-*` (an unparsable
# `grpc-timeout` or `grpc-encoding`). Browsers and SDKs never need them on the HTTP routes.
GRPC_UNSAFE_HEADER = r".*[^0-9a-z_.:\-].*|.+:.*|grpc-.*|.*-bin"
CORS_ALLOWED_HEADERS = (
    "content-type",
    "authorization",
    "x-api-key",
    "x-admin-token",
    "x-nonce",
    "x-spark-initial",
    "x-spark-cache",
    "x-request-id",
    "traceparent",
)

CORS_EXPOSED_HEADERS = (
    "x-request-id",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-cache",
    "x-spark-model",
    "x-spark-provider",
    "x-spark-prompt-injection",
)

# Turns the `x-http-status` initial-metadata header a service sends into the
# HTTP status: the transcoder itself always answers 200 for OK. Initial metadata
# leaves before the call's outcome is known, and the transcoder has already made
# a failed call's :status from its gRPC status (it holds the headers until then):
# a service's status may refine a failure's only with another error (413 for a
# 400), never turn it into a 2xx or 3xx.
STATUS_LUA = """
local function set_status(headers)
  local status = headers:get("x-http-status")
  if status ~= nil then
    headers:remove("x-http-status")
    local failed = string.sub(headers:get(":status") or "", 1, 1) ~= "2"
    if string.match(status, "^[1-5][0-9][0-9]$") and not (failed and tonumber(status) < 400) then
      headers:replace(":status", status)
    end
  end
end
"""

# Every route's response side: the status, then (RESHAPE: on a route with an API's error shape) the error.
RESPONSE_LUA = """
function envoy_on_response(handle)
  local headers = handle:headers()
  set_status(headers)
  RESHAPE
end
"""

# The scanner of JSON strings (RFC 8259) that the Lua pieces reading JSON share; they come after it.
JSON_STRING_LUA = r"""
local find, byte, sub = string.find, string.byte, string.sub

-- The position after the string that opens at i, or nil.
local function string_end(s, i)
  local from = i + 1
  while true do
    local at = find(s, '["\\%z\1-\31]', from)
    if at == nil then return nil end
    local c = byte(s, at)
    if c == 34 then return at + 1 end
    if c ~= 92 then return nil end
    local escaped = byte(s, at + 1)
    if escaped == 117 then
      if find(s, "^%x%x%x%x", at + 2) == nil then return nil end
      from = at + 6
    elseif escaped ~= nil and find('"\\/bfnrt', string.char(escaped), 1, true) then
      from = at + 2
    else
      return nil
    end
  end
end
"""

# Sends a JSON body whose top-level "stream" member is true to STREAM_PATH. A scanner that skips strings
# and tracks nesting, so a "stream" key inside a message or a nested object does not count; its searches
# jump over string contents (base64 images) at C speed. After JSON_STRING_LUA.
STREAM_SWITCH_LUA = """
local function asks_for_stream(body)
  local depth, from = 0, 1
  while true do
    local at = find(body, '[{}%[%]"]', from)
    if at == nil then return false end
    local c = byte(body, at)
    if c == 34 then
      local after = string_end(body, at)
      if after == nil then return false end
      if depth == 1 and sub(body, at, after - 1) == '"stream"' then
        local value = string.match(body, "^%s*:%s*(%a+)", after)
        if value == "true" then return true end
      end
      from = after
    else
      if c == 123 or c == 91 then depth = depth + 1 else depth = depth - 1 end
      from = at + 1
    end
  end
end

function envoy_on_request(handle)
  local body = handle:body()
  if body == nil or body:length() == 0 then return end
  if asks_for_stream(body:getBytes(0, body:length())) then
    handle:headers():replace(":path", "STREAM_PATH")
  end
end
"""

# Gives a failed call its route's API error shape (HttpRoute.error_format). The transcoder made the body
# from the service's gRPC status in the suite's shape (`{"code", "message", "details"}`, keys in any
# order); the message is carried over as the JSON string it is, escapes and all. Only an error is buffered:
# success bodies and streams pass as they come. Envoy's own replies have the API's shape already (see
# _local_reply_config) and are left alone, as are the headers (Retry-After, X-RateLimit-*); Lua's setBytes
# sets content-length. After JSON_STRING_LUA, and one of API_ERROR_LUA.
ERROR_SHAPE_LUA = """
local ERROR_TYPES, CLIENT_ERROR, SERVER_ERROR = TYPE_TABLE, "CLIENT_TYPE", "SERVER_TYPE"

-- The suite error body's message, first ErrorInfo reason and first BadRequest field, each the JSON string
-- it is there (a missing message is empty, the others nil); nil alone if a string in it is not JSON.
local function suite_error(s)
  local depth, from, key, detail = 0, 1, nil, ""
  local message, reason, field
  while true do
    local at = find(s, '[{}%[%]"]', from)
    if at == nil then return message or '""', reason, field end
    local c = byte(s, at)
    if c == 34 then
      local after = string_end(s, at)
      if after == nil then return nil end
      local literal = sub(s, at, after - 1)
      if find(s, "^%s*:", after) then
        key = literal
      else
        if depth == 1 and key == '"message"' then
          message = literal
        elseif depth == 3 and key == '"@type"' then
          detail = literal
        elseif depth == 3 and key == '"reason"' and reason == nil and find(detail, 'ErrorInfo"$') then
          reason = literal
        elseif depth == 5 and key == '"field"' and field == nil and find(detail, 'BadRequest"$') then
          field = literal
        end
        key = nil
      end
      from = after
    else
      if c == 123 or c == 91 then
        depth = depth + 1
        if depth == 3 then detail = "" end
      else
        depth = depth - 1
      end
      key = nil
      from = at + 1
    end
  end
end

local function reshape_error(handle, headers)
  local status = tonumber(headers:get(":status"))
  if status == nil or status < 400 then return end
  if find(headers:get("content-type") or "", "application/json", 1, true) ~= 1 then return end
  local body = handle:body()
  if body == nil or body:length() < 8 or body:getBytes(0, 8) ~= '{"code":' then return end
  local message, reason, field = suite_error(body:getBytes(0, body:length()))
  if message == nil then return end
  local kind = ERROR_TYPES[status] or (status >= 500 and SERVER_ERROR or CLIENT_ERROR)
  body:setBytes(api_error(kind, message, reason, field))
end
"""

# Each API's error body from its type and the suite error's message, reason and field (JSON strings).
API_ERROR_LUA = {
    # OpenAI's `code` is a short snake_case word: the ErrorInfo reason, lowercased.
    "openai": """
local function api_error(kind, message, reason, field)
  return '{"error":{"message":' .. message .. ',"type":"' .. kind .. '","param":' .. (field or "null")
    .. ',"code":' .. (reason and string.lower(reason) or "null") .. '}}'
end
""",
    "anthropic": """
local function api_error(kind, message)
  return '{"type":"error","error":{"type":"' .. kind .. '","message":' .. message .. '}}'
end
""",
}

# An API's error `type` by HTTP status; the statuses not named take its (4xx, 5xx) default.
ERROR_TYPES: dict[str, dict[int, str]] = {
    "openai": {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        409: "conflict_error",
        413: "invalid_request_error",
        422: "invalid_request_error",
        429: "rate_limit_error",
        504: "timeout",
    },
    "anthropic": {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        503: "overloaded_error",
        504: "timeout_error",
    },
}
DEFAULT_ERROR_TYPES: dict[str, tuple[str, str]] = {
    "openai": ("invalid_request_error", "server_error"),
    "anthropic": ("invalid_request_error", "api_error"),
}


def error_type(error_format: ErrorFormat, http_status: int) -> str:
    """The `type` of an error with this HTTP status in an API's shape."""
    client, server = DEFAULT_ERROR_TYPES[error_format]
    return ERROR_TYPES[error_format].get(http_status, server if http_status >= 500 else client)


# Answers HEAD (monitors and link checkers send it) as GET, whose rules are the only ones the transcoder
# knows, and empties the answer's body chunk by chunk as it passes, keeping GET's content-length: Envoy
# drops the body of its own replies to HEAD, not of a transcoded one, as the request it sees is a GET.
# Run by its own filter, which keeps the route cache: the main Lua filter clears it on a header change, and
# the GET route found again would take over the response side (its own Lua, or none), body and all.
HEAD_AS_GET_LUA = """
function envoy_on_request(handle)
  handle:headers():replace(":method", "GET")
end

function envoy_on_response(handle)
  for chunk in handle:bodyChunks() do
    chunk:setBytes("")
  end
end
"""

# Refuses a request body that is not JSON (RFC 8259) before the transcoder reads it: the transcoder's parser
# takes single quotes, unquoted keys and trailing commas, and an empty body as an empty message. A scanner
# with a stack of open containers (no recursion, so any depth) whose searches run at C speed. After
# JSON_STRING_LUA.
JSON_CHECK_REQUEST_LUA = r"""
local function skip_space(s, i)
  local _, last = find(s, "^[ \t\r\n]*", i)
  return last + 1
end

local function digits_end(s, i)
  local _, last = find(s, "^%d+", i)
  return last and last + 1
end

-- The position after the number that starts at i, or nil.
local function number_end(s, i)
  if byte(s, i) == 45 then i = i + 1 end
  local c = byte(s, i)
  if c == 48 then
    i = i + 1
  elseif c ~= nil and c >= 49 and c <= 57 then
    i = digits_end(s, i)
  else
    return nil
  end
  if byte(s, i) == 46 then
    i = digits_end(s, i + 1)
    if i == nil then return nil end
  end
  c = byte(s, i)
  if c == 101 or c == 69 then
    c = byte(s, i + 1)
    i = digits_end(s, (c == 43 or c == 45) and i + 2 or i + 1)
  end
  return i
end

local function literal_end(s, i, word)
  if sub(s, i, i + #word - 1) == word then return i + #word end
  return nil
end

-- The position after `"key" :` at i, or nil.
local function key_end(s, i)
  if byte(s, i) ~= 34 then return nil end
  i = string_end(s, i)
  if i == nil then return nil end
  i = skip_space(s, i)
  if byte(s, i) ~= 58 then return nil end
  return i + 1
end

local function is_json(s)
  local closers, depth, i, want_value = {}, 0, 1, true
  while true do
    i = skip_space(s, i)
    local c = byte(s, i)
    if want_value then
      if c == 123 or c == 91 then
        depth = depth + 1
        closers[depth] = c + 2
        i = skip_space(s, i + 1)
        if byte(s, i) == c + 2 then
          depth, i, want_value = depth - 1, i + 1, false
        elseif c == 123 then
          i = key_end(s, i)
        end
      else
        if c == 34 then
          i = string_end(s, i)
        elseif c == 116 then
          i = literal_end(s, i, "true")
        elseif c == 102 then
          i = literal_end(s, i, "false")
        elseif c == 110 then
          i = literal_end(s, i, "null")
        else
          i = number_end(s, i)
        end
        want_value = false
      end
      if i == nil then return false end
    elseif depth == 0 then
      return c == nil
    elseif c == 44 then
      i, want_value = i + 1, true
      if closers[depth] == 125 then
        i = key_end(s, skip_space(s, i))
        if i == nil then return false end
      end
    elseif c == closers[depth] then
      depth, i = depth - 1, i + 1
    else
      return false
    end
  end
end

local function refuse(handle, message)
  handle:respond({[":status"] = "400", ["content-type"] = "text/plain"}, message)
end

function envoy_on_request(handle)
  local method = handle:headers():get(":method")
  if method ~= "POST" and method ~= "PUT" and method ~= "PATCH" then return end
  local body = handle:body()
  if body == nil or body:length() == 0 then
    if BODY_REQUIRED then refuse(handle, "the body must be JSON, and it is empty") end
    return
  end
  if not is_json(body:getBytes(0, body:length())) then
    refuse(handle, "the body is not JSON (RFC 8259)")
  end
end
"""

# The whole check, on its own.
JSON_CHECK_LUA = JSON_STRING_LUA + JSON_CHECK_REQUEST_LUA

# The transcoder's own errors repeat what they refuse ('id: invalid value "<40 KB>"', 'Could not resolve
# <path> to a method'), and Envoy cannot cut %LOCAL_REPLY_BODY% short: past this many bytes of path or body,
# such an answer says what failed without the value.
ECHO_LIMIT_BYTES = 1024
LONG_TRANSCODER_ERROR = (
    f"response.code_details.contains('grpc_json_transcode_failure') && (size(request.path) > {ECHO_LIMIT_BYTES}"
    f" || request.size > {ECHO_LIMIT_BYTES} || ('x-envoy-original-path' in request.headers"
    f" && size(request.headers['x-envoy-original-path']) > {ECHO_LIMIT_BYTES}))"
)

# HTTP status -> the gRPC code with the same meaning, so that Envoy's own
# errors carry the same `code` field as errors transcoded from services.
GRPC_CODE_BY_HTTP = {
    400: 3,
    401: 16,
    403: 7,
    404: 5,
    408: 4,
    409: 10,
    413: 8,
    429: 8,
    431: 8,
    500: 13,
    502: 14,
    503: 14,
    504: 4,
}

ACCESS_LOG_FORMAT = {
    "ts": "%START_TIME%",
    "method": "%REQ(X-SPARK-ORIGINAL-METHOD?:METHOD)%",
    # Without the query: it may carry what must not be logged (sign-in's single-use `code` and `state`).
    "path": "%PATH(NQ:ORIG_OR_PATH)%",
    "status": "%RESPONSE_CODE%",
    "grpc_status": "%GRPC_STATUS%",
    "flags": "%RESPONSE_FLAGS%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "duration_ms": "%DURATION%",
    "bytes_in": "%BYTES_RECEIVED%",
    "bytes_out": "%BYTES_SENT%",
    "upstream": "%UPSTREAM_CLUSTER%",
    "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
    # Behind a proxy the client above is the proxy; this is who it says it forwarded for (and the edge's entry).
    "forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "trace_id": "%TRACE_ID%",
    "user_agent": "%REQ(USER-AGENT)%",
}


def _error_body(code: int | str, message: str, reason: str) -> Json:
    return {
        "code": code,
        "message": message,
        "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": EDGE_ERROR_DOMAIN}
        ],
    }


def _transcoder(settings: EdgeSettings, max_body_bytes: int, *, snake_case: bool) -> Json:
    """A whole transcoder config: per-route configs replace the filter's, so each repeats every option."""
    return {
        "@type": TYPE + "envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
        "proto_descriptor": str(settings.descriptor_path),
        "services": list(TRANSCODED_SERVICES),
        "match_incoming_request_route": True,
        "convert_grpc_status": True,
        # Keys may hold any character: `%2F`, `%3F`, `%23` and `%25` in a path segment decode to `/`, `?`, `#`, `%`.
        "url_unescape_spec": "ALL_CHARACTERS",
        "request_validation_options": {
            "reject_unknown_method": True,
            "reject_unknown_query_parameters": True,
            "reject_binding_body_field_collisions": True,
        },
        "max_request_body_size": max_body_bytes,
        # An export (/admin/backup) of a registry larger than a restore takes still downloads.
        "max_response_body_size": max(
            max_body_bytes, settings.kv_max_value_bytes, settings.restore_max_body_bytes, EXPORT_MAX_BYTES
        )
        + 1024 * 1024,
        "print_options": {
            "add_whitespace": False,
            "always_print_primitive_fields": True,
            "always_print_enums_as_ints": False,
            "preserve_proto_field_names": snake_case,
            "stream_sse_style_delimited": True,
        },
    }


def _filter_config(config: Json | None = None, *, disabled: bool = False) -> Json:
    wrapped: Json = {"@type": TYPE + "envoy.config.route.v3.FilterConfig", "disabled": disabled}
    if config is not None:
        wrapped["config"] = config
    return wrapped


def _route_lua(route: HttpRoute, *, head: bool = False) -> str:
    """The route's Lua source: on the request side the stream switch or the JSON check (neither for a HEAD
    twin, which has no body), and on the response side the status (any call may be refused with a status
    the transcoder does not make, e.g. 428 for a missing nonce), then the error's shape."""
    parts = []
    if not head and route.stream_path is not None:
        parts.append(STREAM_SWITCH_LUA.replace("STREAM_PATH", route.stream_path))
    elif not head and route.json_body is not None:
        parts.append(JSON_CHECK_REQUEST_LUA.replace("BODY_REQUIRED", str(route.json_body == "required").lower()))
    reshape = route.error_format != "suite"
    if reshape:
        parts.append(_error_shape_lua(route.error_format))
    if parts:
        parts.insert(0, JSON_STRING_LUA)
    parts.append(STATUS_LUA)
    parts.append(RESPONSE_LUA.replace("RESHAPE", "reshape_error(handle, headers)" if reshape else ""))
    return "".join(parts)


def _error_shape_lua(error_format: ErrorFormat) -> str:
    types = ", ".join(f'[{status}] = "{kind}"' for status, kind in sorted(ERROR_TYPES[error_format].items()))
    client, server = DEFAULT_ERROR_TYPES[error_format]
    return API_ERROR_LUA[error_format] + (
        ERROR_SHAPE_LUA.replace("TYPE_TABLE", "{" + types + "}")
        .replace("CLIENT_TYPE", client)
        .replace("SERVER_TYPE", server)
    )


def _lua_per_route(source: str) -> Json:
    lua = {"@type": TYPE + "envoy.extensions.filters.http.lua.v3.LuaPerRoute", "source_code": {"inline_string": source}}
    return _filter_config(lua, disabled=False)


def _route_timeout_s(route: HttpRoute, settings: EdgeSettings) -> float:
    if route.streaming:
        return 0
    if route.time_limit == "restore":
        return settings.restore_route_timeout_s
    return route.timeout_s if route.timeout_s is not None else settings.route_timeout_s


def is_app_route(route: HttpRoute) -> bool:
    """A route of the hosted app's own calls (`/_spark/*`), which an anonymous visitor of a public app makes."""
    path = route.match.get("path") or route.match.get("path_separated_prefix")
    return isinstance(path, str) and (path == APP_PREFIX or path.startswith(APP_PREFIX + "/"))


def public_routes(settings: EdgeSettings) -> frozenset[str]:
    """The routes whose every RPC may be called without a credential, by the policies the protos declare
    (`spark.policy.v1.policy`): HTTP route classes, and native gRPC services (health and reflection are not
    the suite's, and open)."""
    pool, _ = load_pool(settings.descriptor_path)
    policies = method_policies(TRANSCODED_SERVICES, pool)
    publics: dict[str, list[bool]] = {}
    for binding in http_routes(pool, TRANSCODED_SERVICES):
        route = route_for_path(binding.path)
        if route is not None:
            publics.setdefault(route.name, []).append(policies[f"/{binding.rpc}"].public)
    for services in GRPC_SERVICES.values():
        for service in services:
            prefix = f"/{service}/"
            # Not one of the suite's services (health, reflection): an empty list, and open.
            publics[f"grpc-{service}"] = [p.public for name, p in policies.items() if name.startswith(prefix)]
    return frozenset(name for name, public in publics.items() if all(public))


def _credentials_checked(config: Json, name: str, public: frozenset[str]) -> Json:
    """Turns the credential check on for a route that is not public (a path no route serves stays a 404)."""
    if name not in public:
        per_route = {"@type": TYPE + "envoy.extensions.filters.http.rbac.v3.RBACPerRoute", "rbac": _credential_rules()}
        config.setdefault("typed_per_filter_config", {})[RBAC] = _filter_config(per_route)
    return config


def _http_route(route: HttpRoute, settings: EdgeSettings, *, head: bool = False) -> Json:
    """The route of one class; with `head`, its twin for HEAD requests, which it answers as GET."""
    body_limit = {
        "kv": settings.kv_max_value_bytes,
        "restore": settings.restore_max_body_bytes,
        "llm": settings.llm_max_body_bytes,
        "vision": settings.vision_max_body_bytes,
    }.get(route.body_limit or "", settings.default_max_body_bytes)
    per_filter: Json = {TRANSCODER: _transcoder(settings, body_limit, snake_case=route.snake_case)}
    if route.body_limit is None:
        # The transcoder enforces its body limit only on the raw (HttpBody) bodies it buffers; a JSON body
        # streams into the message unchecked, so 20 MiB reached a service (a 429 or 504 rather than a 413).
        buffer = {
            "@type": TYPE + "envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
            "buffer": {"max_request_bytes": body_limit},
        }
        per_filter[BUFFER] = _filter_config(buffer)
    per_filter[LUA] = _lua_per_route(_route_lua(route, head=head))
    if head:
        per_filter[HEAD_AS_GET] = _lua_per_route(HEAD_AS_GET_LUA)
    timeout_s = _route_timeout_s(route, settings)
    match: Json = dict(route.match)
    if head:
        match["headers"] = [{"name": ":method", "string_match": {"exact": "HEAD"}}]
    config: Json = {
        "name": f"{route.name}-head" if head else route.name,
        "match": match,
        "route": {
            "cluster": route.upstream,
            "timeout": f"{timeout_s:g}s",
            # Retried when the request cannot have reached a service (or may safely run twice), on another
            # instance when there is one.
            "retry_policy": {
                "retry_on": "connect-failure,refused-stream,reset-before-request"
                + (",reset" if route.idempotent else ""),
                "num_retries": 2,
                "retry_host_predicate": [
                    {
                        "name": "envoy.retry_host_predicates.previous_hosts",
                        "typed_config": {
                            "@type": TYPE + "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                        },
                    }
                ],
                "host_selection_retry_max_attempts": 3,
            },
        },
        "typed_per_filter_config": per_filter,
    }
    if route.streaming:
        config["route"]["idle_timeout"] = "0s"
    elif route.time_limit is not None:
        # A restore sends nothing until it answers: the route timeout alone bounds the wait.
        config["route"]["idle_timeout"] = f"{timeout_s:g}s"
    if not head and route.stream_path is not None:
        # Lua buffers the whole body, which the listener's small buffer limit would otherwise refuse with 413.
        config["request_body_buffer_limit"] = body_limit
    return config


def _grpc_route(service: str, upstream: str, settings: EdgeSettings) -> Json:
    """Native gRPC passes straight through: no transcoding and no header rewriting (the virtual host's
    header rules still replace a client's internal headers)."""
    name = f"grpc-{service}"
    config: Json = {
        "name": name,
        "match": {"prefix": f"/{service}/", "grpc": {}},
        # The caller's grpc-timeout is the deadline, as it would be without the edge.
        "route": {"cluster": upstream, "timeout": "0s", "max_stream_duration": {"grpc_timeout_header_max": "0s"}},
        "typed_per_filter_config": {HEADER_MUTATION: _filter_config(disabled=True)},
    }
    return config


def _direct_reply(reply: DirectReply, settings: EdgeSettings) -> Json:
    config: Json = {
        "name": reply.name,
        "match": dict(reply.match),
        "typed_per_filter_config": {TRANSCODER: _filter_config(disabled=True)},
        # Envoy's local-reply formatting wraps the text into the JSON error shape.
        "direct_response": {"status": reply.status, "body": {"inline_string": reply.message}},
    }
    return config


def _cors_policy(settings: EdgeSettings) -> Json:
    return {
        "@type": TYPE + "envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": [{"exact": origin} for origin in settings.allowed_origins],
        "allow_methods": "GET, POST, PUT, DELETE, OPTIONS",
        "allow_headers": ", ".join(CORS_ALLOWED_HEADERS),
        "expose_headers": ", ".join(CORS_EXPOSED_HEADERS),
        "max_age": "600",
        "forward_not_matching_preflights": False,
    }


def _route_config(settings: EdgeSettings) -> Json:
    routes: list[Json] = [_direct_reply(reply, settings) for reply in DIRECT_REPLIES]
    routes += [
        _grpc_route(service, upstream, settings)
        for upstream, services in GRPC_SERVICES.items()
        if upstream in settings.upstreams
        for service in services
    ]
    # A gRPC call to any other path is UNIMPLEMENTED here, rather than a confusing pass-through to an HTTP route.
    unknown_grpc: Json = {
        "name": "grpc-unknown",
        "match": {"prefix": "/", "grpc": {}},
        "direct_response": {"status": 404, "body": {"inline_string": "unknown gRPC service or method"}},
        "typed_per_filter_config": {HEADER_MUTATION: _filter_config(disabled=True)},
    }
    routes.append(unknown_grpc)
    served = [route for route in HTTP_ROUTES if route.upstream in settings.upstreams]
    # The HEAD twins first: the route each matches on its path alone would take a HEAD as an unknown method.
    routes += [_http_route(route, settings, head=True) for route in served]
    routes += [_http_route(route, settings) for route in served]
    if settings.credentials_required:
        public = public_routes(settings) | {"grpc-unknown", *(reply.name for reply in DIRECT_REPLIES)}
        if settings.anonymous_app_calls:
            public |= {route.name for route in HTTP_ROUTES if is_app_route(route)}
        routes = [_credentials_checked(route, route["name"].removesuffix("-head"), public) for route in routes]
    # The app's own routes are public: its files are, and a page that needs a session is the access service's
    # to refuse (it redirects to sign-in). Its files first, the client-side routes after every API route.
    static_filters = {TRANSCODER: _filter_config(disabled=True)}
    files: list[Json] = [status_route(settings.app_name, static_filters)]
    tail: list[Json] = []
    if settings.app is not None:
        gated = settings.app_access != "public"
        app_files, tail = app_routes(
            settings.app,
            static_filters=static_filters,
            page_filters={LUA: _lua_per_route(open_page_lua())} if gated else None,
            timeout_s=settings.route_timeout_s,
        )
        files += app_files
    routes = files + routes + tail
    virtual_host: Json = {
        "name": "suite",
        "domains": ["*"],
        "routes": routes,
        # Applied on the way to the upstream, on every route: a client never speaks for the suite.
        "request_headers_to_remove": list(INTERNAL_HEADERS),
    }
    if settings.internal_token is not None:
        virtual_host["request_headers_to_add"] = [
            {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for key, value in (
                (INTERNAL_HEADER, settings.internal_token),
                (CLIENT_ADDRESS_HEADER, "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
            )
        ]
    if settings.allowed_origins:
        virtual_host["typed_per_filter_config"] = {CORS: _cors_policy(settings)}
    return {
        "name": "edge",
        "virtual_hosts": [virtual_host],
        # Envoy's own answers: the errors (small), and the hosted app's files (each read into memory at start).
        "max_direct_response_body_size_bytes": direct_body_limit(settings.app),
    }


def _status_filter(http_status: int, op: str = "EQ") -> Json:
    """A local-reply mapper's filter on the status: equal to it ("EQ"), at least it ("GE") or at most ("LE")."""
    key = {"EQ": "edge.reply_", "GE": "edge.reply_from_", "LE": "edge.reply_to_"}[op] + str(http_status)
    return {
        "status_code_filter": {"comparison": {"op": op, "value": {"default_value": http_status, "runtime_key": key}}}
    }


def _status_details(code: int, message: str, reason: str) -> str:
    """A `google.rpc.Status` with the error's ErrorInfo, as gRPC's `grpc-status-details-bin` carries it
    (base64): native gRPC callers get the same rich details from the edge as from a service."""
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=EDGE_ERROR_DOMAIN))
    status = status_pb2.Status(code=code, message=message, details=[info])
    return base64.b64encode(status.SerializeToString()).decode().rstrip("=")


def _cel_filter(expression: str) -> Json:
    """A local-reply mapper's filter on a CEL expression over the request and response attributes."""
    return {
        "extension_filter": {
            "name": "envoy.access_loggers.extension_filters.cel",
            "typed_config": {
                "@type": TYPE + "envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                "expression": expression,
            },
        }
    }


def _regex_literal(text: str) -> str:
    """A route path as an RE2 pattern that matches it alone (CEL strings would need a backslash escaped)."""
    return "".join(c if c.isalnum() or c in "/_-:" else f"[{c}]" for c in text)


def _api_paths(error_format: ErrorFormat) -> str:
    """A CEL expression: whether the request's path, as the client sent it (the transcoder keeps it when it
    makes the path a gRPC method's), is one of the routes' with this error format (edge/routes.py)."""
    patterns = []
    routes: list[HttpRoute | DirectReply] = [*HTTP_ROUTES, *DIRECT_REPLIES]
    for route in routes:
        if route.error_format != error_format:
            continue
        if "path" in route.match:
            patterns.append(_regex_literal(str(route.match["path"])))
        else:
            patterns.append(_regex_literal(str(route.match["path_separated_prefix"])) + "(/.*)?")
    path = "('x-envoy-original-path' in request.headers ? request.headers['x-envoy-original-path'] : request.path)"
    return f"{path}.matches('^({'|'.join(patterns)})([?].*)?$')"


def _reply_format(error_format: ErrorFormat, http_status: int, grpc_code: int | str, reason: str) -> Json:
    """The JSON of Envoy's own reply in an error shape."""
    if error_format == "suite":
        return {"json_format": _error_body(grpc_code, "%LOCAL_REPLY_BODY%", reason), "content_type": JSON_CONTENT_TYPE}
    return _api_reply_format(error_format, error_type(error_format, http_status), reason)


def _api_reply_format(error_format: ErrorFormat, kind: str, reason: str) -> Json:
    """The JSON of Envoy's own reply in an API's shape: `reason` is OpenAI's `code`, lowercased as the route's
    Lua lowercases a service's ErrorInfo reason (a command operator prints lowercase words already)."""
    if error_format == "openai":
        code = reason if reason.startswith("%") else reason.lower()
        body: Json = {"error": {"message": "%LOCAL_REPLY_BODY%", "type": kind, "param": None, "code": code}}
    else:
        body = {"type": "error", "error": {"type": kind, "message": "%LOCAL_REPLY_BODY%"}}
    return {"json_format": body, "content_type": JSON_CONTENT_TYPE}


def _local_reply_config() -> Json:
    """Envoy's own replies (no route, 413, upstream down, timeouts) as JSON in the services' error shape, or on
    a route with an API's error shape (HttpRoute.error_format), in that. The mappers pick the shape by path, as
    some of these replies pass no route's Lua: the credential check's and the connection manager's own come
    before it, and a direct reply has none. Those that do pass it are left alone there (ERROR_SHAPE_LUA)."""
    # Native gRPC callers get a text body. A transcoded request also has a gRPC content type by the time the
    # transcoder rejects its body (e.g. 413), so it is told apart by the original path the transcoder keeps.
    native_grpc: list[Json] = [
        {"header_filter": {"header": {"name": "content-type", "string_match": {"prefix": "application/grpc"}}}},
        {"header_filter": {"header": {"name": "x-envoy-original-path", "present_match": True, "invert_match": True}}},
    ]
    text_body = {"text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"}}
    grpc_mapper = {"filter": {"and_filter": {"filters": native_grpc}}, "body_format_override": text_body}
    # A request refused for carrying no credential at all (the credential check's RBAC rule): the services'
    # own 401 and words, UNAUTHENTICATED for gRPC callers.
    no_credential = _cel_filter("response.code_details.startsWith('rbac_access_denied')")
    grpc_no_credential_mapper = {
        "filter": {"and_filter": {"filters": [*native_grpc, no_credential]}},
        "body": {"inline_string": API_KEY_OR_ADMIN_TOKEN_REQUIRED},
        "headers_to_add": [
            {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for key, value in (
                ("grpc-status", str(UNAUTHENTICATED)),
                ("grpc-message", API_KEY_OR_ADMIN_TOKEN_REQUIRED),
                (
                    "grpc-status-details-bin",
                    _status_details(UNAUTHENTICATED, API_KEY_OR_ADMIN_TOKEN_REQUIRED, "API_KEY_MISSING"),
                ),
            )
        ],
        "body_format_override": text_body,
    }
    details = "%RESPONSE_CODE_DETAILS%"
    unrepeated = {
        "inline_string": "the request's method, path, query or body does not fit this route; "
        "the value at fault is too long to repeat here"
    }
    # Each kind of reply: what picks it, its HTTP status, its gRPC code and reason, and what the mapper sets.
    replies: list[tuple[list[Json], int, int, str, Json]] = [
        (
            [no_credential],
            401,
            UNAUTHENTICATED,
            "API_KEY_MISSING",
            {"status_code": 401, "body": {"inline_string": API_KEY_OR_ADMIN_TOKEN_REQUIRED}},
        ),
        # Path normalisation refuses an encoded NUL with an empty body; say why.
        (
            [
                _status_filter(400),
                {"header_filter": {"header": {"name": ":path", "string_match": {"contains": "%00"}}}},
            ],
            400,
            3,
            details,
            {"body": {"inline_string": "the path holds an encoded NUL (%00), which no key or name may contain"}},
        ),
        *(
            (
                [_status_filter(status), _cel_filter(LONG_TRANSCODER_ERROR)],
                status,
                GRPC_CODE_BY_HTTP[status],
                details,
                {"body": unrepeated},
            )
            for status in (400, 404)
        ),
        *(([_status_filter(status)], status, code, details, {}) for status, code in GRPC_CODE_BY_HTTP.items()),
    ]
    # Envoy's answers that are no error (the hosted app's files, their 304s, /_spark/status) go as they are: an
    # unchanged body keeps the content type the route set, and a 304 stays without one. First, as they are
    # most of Envoy's answers, and none of the error mappers' filters need be tried for them.
    as_they_are = {
        "filter": _status_filter(399, "LE"),
        "body_format_override": {"text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"}},
    }
    mappers = [as_they_are, grpc_no_credential_mapper, grpc_mapper]
    api_formats: tuple[ErrorFormat, ...] = ("openai", "anthropic")
    for error_format in api_formats:
        on_path = _cel_filter(_api_paths(error_format))
        for filters, http_status, _, reason, sets in replies:
            mappers.append(
                {
                    "filter": {"and_filter": {"filters": [*filters, on_path]}},
                    **sets,
                    "body_format_override": _reply_format(error_format, http_status, 0, reason),
                }
            )
        # Any other error status, by its class.
        client, server = DEFAULT_ERROR_TYPES[error_format]
        for http_status, kind in ((500, server), (400, client)):
            mappers.append(
                {
                    "filter": {"and_filter": {"filters": [_status_filter(http_status, "GE"), on_path]}},
                    "body_format_override": _api_reply_format(error_format, kind, details),
                }
            )
    for filters, http_status, grpc_code, reason, sets in replies:
        mappers.append(
            {
                "filter": filters[0] if len(filters) == 1 else {"and_filter": {"filters": filters}},
                **sets,
                "body_format_override": _reply_format("suite", http_status, grpc_code, reason),
            }
        )
    return {
        "mappers": mappers,
        "body_format": _reply_format("suite", 0, "%RESPONSE_CODE%", details),
    }


def _header_mutation(settings: EdgeSettings) -> Json:
    security_headers = {
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
    }
    if settings.tls_cert is not None:
        # Only over TLS: on plain HTTP a browser ignores it, and it would pin a host that has no TLS yet.
        security_headers["strict-transport-security"] = HSTS
    response_mutations: list[Json] = [
        {"remove": name}
        for name in ("grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-accept-encoding", "x-http-status")
    ]
    response_mutations += [
        {"append": {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}
        for key, value in security_headers.items()
    ]
    if settings.allowed_origins:
        # The CORS filter's headers depend on the request's Origin (and its absence), and it says so to no
        # cache: without Vary, one origin's answer (or a same-origin one) would be served to another.
        response_mutations.append(
            {"append": {"header": {"key": "vary", "value": "Origin"}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}}
        )
    # The transcoder rewrites the method to POST; keep the caller's for the access log.
    request_mutations: list[Json] = [
        {
            "append": {
                "header": {"key": ORIGINAL_METHOD_HEADER, "value": "%REQ(:METHOD)%"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        },
        {"remove_on_match": {"key_matcher": {"safe_regex": {"regex": GRPC_UNSAFE_HEADER}}}},
    ]
    return {
        "@type": TYPE + "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
        "mutations": {"request_mutations": request_mutations, "response_mutations": response_mutations},
    }


def _credentials_filter(settings: EdgeSettings) -> list[Json]:
    """In keys mode, a request to a route that is not public needs some credential header to go on: one with
    none is refused here (401, as the service would), before its body is buffered or a service sees it.
    Whether a credential is right is the service's to say. On per route (_credentials_checked): a path no
    route serves stays a 404, whatever it carries."""
    if not settings.credentials_required:
        return []
    config = {"@type": TYPE + "envoy.extensions.filters.http.rbac.v3.RBAC", **_credential_rules()}
    return [{"name": RBAC, "disabled": True, "typed_config": config}]


def _credential_rules() -> Json:
    """An RBAC config that allows a request carrying any of the credential headers."""
    present = [{"header": {"name": name, "present_match": True}} for name in CREDENTIAL_HEADERS]
    policy = {"permissions": [{"any": True}], "principals": present}
    return {"rules": {"action": "ALLOW", "policies": {"credentials": policy}}}


def _http_filters(settings: EdgeSettings) -> list[Json]:
    return [
        {"name": CORS, "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.cors.v3.Cors"}},
        {"name": HEADER_MUTATION, "typed_config": _header_mutation(settings)},
        *_credentials_filter(settings),
        {
            "name": HEAD_AS_GET,
            "disabled": True,
            "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.lua.v3.Lua", "clear_route_cache": False},
        },
        # Before Lua: a JSON body is whole when the JSON check reads it, and one over the limit is refused with
        # 413 here (Lua, buffering it itself, stalled the upload at the limit instead).
        {
            "name": BUFFER,
            "disabled": True,
            "typed_config": {
                "@type": TYPE + "envoy.extensions.filters.http.buffer.v3.Buffer",
                "max_request_bytes": settings.default_max_body_bytes,
            },
        },
        {
            "name": LUA,
            "disabled": True,
            "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.lua.v3.Lua"},
        },
        {"name": TRANSCODER, "typed_config": _transcoder(settings, settings.default_max_body_bytes, snake_case=False)},
        ROUTER_FILTER,
    ]


def _tracing(settings: EdgeSettings) -> Json | None:
    if settings.otlp is None:
        return None
    return {
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": TYPE + "envoy.config.trace.v3.OpenTelemetryConfig",
                "grpc_service": {"envoy_grpc": {"cluster_name": "otlp_collector"}, "timeout": "1s"},
                "service_name": "spark-edge",
            },
        },
        # Head sampling: the edge decides for each HTTP request and passes the decision on in `traceparent`
        # (a client's own sampled flag cannot force a trace); the services follow it.
        "random_sampling": {"value": round(settings.trace_ratio * 100, 4)},
    }


def _connection_manager(settings: EdgeSettings) -> Json:
    manager: Json = {
        "@type": HCM_TYPE,
        "stat_prefix": "edge",
        "codec_type": "AUTO",
        "use_remote_address": True,
        "normalize_path": True,
        "merge_slashes": True,
        # Keys carry `%2F`: it must reach the transcoder as it was sent, neither decoded into a separator nor refused.
        "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
        "server_name": "spark-edge",
        "server_header_transformation": "OVERWRITE",
        "max_request_headers_kb": MAX_REQUEST_HEADERS_KB,
        "request_headers_timeout": "10s",
        "request_timeout": "120s",
        "stream_idle_timeout": f"{settings.stream_idle_timeout_s:g}s",
        "generate_request_id": True,
        "common_http_protocol_options": {
            "idle_timeout": "300s",
            "headers_with_underscores_action": "REJECT_REQUEST",
            "max_headers_count": MAX_REQUEST_HEADERS,
        },
        "http2_protocol_options": {
            "max_concurrent_streams": 100,
            "initial_stream_window_size": 65536,
            "initial_connection_window_size": 1048576,
        },
        "access_log": [
            {
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": TYPE + "envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": settings.access_log_path,
                    "log_format": {"json_format": ACCESS_LOG_FORMAT},
                },
            }
        ],
        "local_reply_config": _local_reply_config(),
        "route_config": _route_config(settings),
        "http_filters": _http_filters(settings),
    }
    tracing = _tracing(settings)
    if tracing is not None:
        manager["tracing"] = tracing
    return manager


def _address(host: str, port: int) -> Json:
    return {"socket_address": {"address": host, "port_value": port}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _cluster(name: str, upstreams: tuple[Upstream, ...], *, health_checked: bool = True) -> Json:
    cluster: Json = {
        "name": name,
        # Service names (docker compose, Kubernetes) resolve through DNS and may list several instances.
        "type": "STATIC" if all(_is_ip(u.host) for u in upstreams) else "STRICT_DNS",
        "connect_timeout": "1s",
        "lb_policy": "LEAST_REQUEST",
        "per_connection_buffer_limit_bytes": 1048576,
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": TYPE + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {"max_concurrent_streams": 1000}},
            }
        },
        # A dead instance leaves the rotation after two failed connections, well before its health check fails.
        "outlier_detection": {
            "consecutive_gateway_failure": 2,
            "consecutive_local_origin_failure": 2,
            "split_external_local_origin_errors": True,
            "interval": "1s",
            "base_ejection_time": "5s",
            "max_ejection_percent": 100,
        },
        "circuit_breakers": {
            "thresholds": [
                {"max_connections": 1024, "max_pending_requests": 4096, "max_requests": 4096, "max_retries": 16}
            ]
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(u.host, u.port)}} for u in upstreams]}],
        },
    }
    if health_checked:
        cluster["health_checks"] = [
            {
                "timeout": "1s",
                "interval": "5s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {},
            }
        ]
    return cluster


def _edge_listener(settings: EdgeSettings) -> Json:
    chain: Json = {"filters": [{"name": HCM, "typed_config": _connection_manager(settings)}]}
    if settings.tls_cert is not None and settings.tls_key is not None:
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": TYPE + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {
                    "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                    "tls_certificates": [
                        {
                            "certificate_chain": {"filename": str(settings.tls_cert)},
                            "private_key": {"filename": str(settings.tls_key)},
                        }
                    ],
                    "alpn_protocols": ["h2", "http/1.1"],
                },
            },
        }
    return {
        "name": "edge",
        "address": _address(settings.listen_host, settings.port),
        "per_connection_buffer_limit_bytes": 32768,
        "filter_chains": [chain],
    }


def _stats_listener(port: int, settings: EdgeSettings) -> Json:
    """Serves Envoy's Prometheus text and nothing else of the admin API (which has no authentication)."""
    routes = [
        {"match": {"path": "/stats/prometheus"}, "route": {"cluster": ADMIN_CLUSTER}},
        {"match": {"prefix": "/"}, "direct_response": {"status": 404, "body": {"inline_string": "not found\n"}}},
    ]
    manager = {
        "@type": HCM_TYPE,
        "stat_prefix": "stats",
        "route_config": {"name": "stats", "virtual_hosts": [{"name": "stats", "domains": ["*"], "routes": routes}]},
        "http_filters": [ROUTER_FILTER],
    }
    return {
        "name": "stats",
        "address": _address(settings.listen_host, port),
        "filter_chains": [{"filters": [{"name": HCM, "typed_config": manager}]}],
    }


def _admin_cluster(settings: EdgeSettings) -> Json:
    host = "127.0.0.1" if settings.admin_host in ("0.0.0.0", "::") else settings.admin_host
    return {
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADMIN_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(host, settings.admin_port)}}]}],
        },
    }


def render(settings: EdgeSettings) -> Json:
    """The whole Envoy bootstrap for these settings."""
    clusters = [_cluster(name, upstreams) for name, upstreams in settings.upstreams.items()]
    if settings.otlp is not None:
        clusters.append(_cluster("otlp_collector", (settings.otlp,), health_checked=False))
    listeners = [_edge_listener(settings)]
    if settings.stats_port is not None:
        listeners.append(_stats_listener(settings.stats_port, settings))
        clusters.append(_admin_cluster(settings))
    heap_monitor = "envoy.resource_monitors.fixed_heap"
    return {
        "admin": {"address": _address(settings.admin_host, settings.admin_port)},
        "overload_manager": {
            "refresh_interval": "0.25s",
            "resource_monitors": [
                {
                    "name": heap_monitor,
                    "typed_config": {
                        "@type": TYPE + "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig",
                        "max_heap_size_bytes": settings.max_heap_bytes,
                    },
                },
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": TYPE
                        + "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": settings.max_connections,
                    },
                },
            ],
            "actions": [
                {
                    "name": "envoy.overload_actions.shrink_heap",
                    "triggers": [{"name": heap_monitor, "threshold": {"value": 0.95}}],
                },
                {
                    "name": "envoy.overload_actions.stop_accepting_requests",
                    "triggers": [{"name": heap_monitor, "threshold": {"value": 0.98}}],
                },
            ],
        },
        "static_resources": {
            "listeners": listeners,
            "clusters": clusters,
        },
    }
