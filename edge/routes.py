"""Which HTTP paths and gRPC services the edge sends to which upstream.

Adding a service to the edge is a few lines here: its HTTP route classes and
the gRPC services it serves natively. The HTTP contract itself (methods, path
templates, bodies) lives in the protos' `google.api.http` rules, and who may
call each method in their `spark.policy.v1.policy` options, which the services
check themselves (services/access/checkpoint.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# The shape of a route's error bodies: the suite's `{"code", "message", "details"}`, or the API's own that its
# SDKs read (`body["error"]`), OpenAI's or Anthropic's.
ErrorFormat = Literal["suite", "openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """One class of transcoded HTTP routes."""

    name: str
    # An Envoy RouteMatch: `path`, `path_separated_prefix`, or `safe_regex` (`{"regex": ...}`, RE2 on the whole
    # path) where a path template's variable comes first (`/runtime/{app}/...`).
    match: dict[str, str | dict[str, str]]
    upstream: str
    # None: the edge default; "kv": the KV value limit; "restore": the prompt-restore limit; "llm": the chat limit;
    # "vision": the image-upload limit.
    body_limit: str | None = None
    # Snake_case JSON on the wire (OpenAI, vision and prompts shapes).
    snake_case: bool = False
    # None: the edge's route timeout (SPARK_EDGE_ROUTE_TIMEOUT_S).
    timeout_s: float | None = None
    # "restore": the prompts service's restore time limit plus a margin instead, so that the caller always
    # gets the service's own answer (a restore either took effect or changed nothing), never a 504 from here.
    time_limit: str | None = None
    # Every method of the class may run twice with the same effect, so a request cut off by a dying
    # instance is retried on another even if it may have reached the first.
    idempotent: bool = False
    # A JSON body whose top-level "stream" is true goes to this path instead (Envoy routes on paths, not bodies).
    stream_path: str | None = None
    # Server-Sent Events that last as long as the model talks: no route or idle timeout.
    streaming: bool = False
    # The transcoder reads a JSON body into the message (a `body` rule on a field that is not HttpBody). Its
    # parser takes what is not JSON (single quotes, unquoted keys, trailing commas; an empty body as an empty
    # message), so the edge checks POST, PUT and PATCH bodies first: "optional" lets an empty body through
    # (the service names the fields it needs), "required" refuses it too.
    json_body: str | None = None
    # The shape of its error bodies (the edge reshapes the suite's; see edge/envoy.py, ERROR_SHAPE_LUA).
    error_format: ErrorFormat = "suite"


@dataclass(frozen=True, slots=True)
class DirectReply:
    """A route Envoy answers itself, with a fixed JSON error."""

    name: str
    match: dict[str, object]
    status: int
    message: str
    error_format: ErrorFormat = "suite"


def _runtime(rest: str) -> dict[str, str | dict[str, str]]:
    """The match of `/runtime/{app}/<rest>` (`rest` a regex) for any one path segment as the app."""
    return {"safe_regex": {"regex": "/runtime/[^/]+/" + rest}}


HTTP_ROUTES: tuple[HttpRoute, ...] = (
    HttpRoute(
        "healthz",
        {"path": "/healthz"},
        "meta",
        snake_case=True,
        timeout_s=5.0,
        idempotent=True,
    ),
    # KV writes are whole-value sets, set-if-absent and deletes: repeating one changes nothing.
    HttpRoute("spark-kv", {"path_separated_prefix": "/_spark/kv"}, "kv", body_limit="kv", idempotent=True),
    HttpRoute("spark-db", {"path_separated_prefix": "/_spark/db"}, "kv", idempotent=True),
    HttpRoute("spark-user", {"path": "/_spark/user"}, "access", idempotent=True),
    # The runtime always reports `{"url", "load_ms"}`: an empty report would be counted as a 0 ms load.
    HttpRoute("spark-loaded", {"path": "/_spark/loaded"}, "access", json_body="required"),
    # Sign-in with GitHub (login, callback, logout) and the page loads of an app that needs a session; their
    # answers are redirects and cookies (`Location`, `Set-Cookie`) as well as JSON errors.
    HttpRoute("spark-auth", {"path_separated_prefix": "/_spark/auth"}, "access"),
    # The same routes for the app `{app}` (the Spark vite plugin's dev proxy calls them); the app name is checked
    # by the services (and by the `runtime-invalid-app` reply below for what no name can hold).
    HttpRoute("runtime-kv", _runtime("kv(/.*)?"), "kv", body_limit="kv", idempotent=True),
    HttpRoute("runtime-db", _runtime("db(/.*)?"), "kv", idempotent=True),
    HttpRoute("runtime-user", _runtime("user"), "access", idempotent=True),
    HttpRoute("runtime-loaded", _runtime("loaded"), "access", json_body="required"),
    HttpRoute(
        "prompts",
        {"path_separated_prefix": "/v1/prompts"},
        "prompts",
        snake_case=True,
        json_body="optional",
    ),
    HttpRoute("prompts-render", {"path": "/v1/prompts:render"}, "prompts", snake_case=True, json_body="optional"),
    HttpRoute("about", {"path": "/about"}, "prompts", snake_case=True, idempotent=True),
    HttpRoute("admin-backup", {"path": "/admin/backup"}, "prompts", snake_case=True),
    HttpRoute("admin-backups", {"path": "/admin/backups"}, "prompts", snake_case=True, idempotent=True),
    HttpRoute(
        "admin-restore",
        {"path": "/admin/restore"},
        "prompts",
        snake_case=True,
        body_limit="restore",
        time_limit="restore",
    ),
    HttpRoute(
        "admin-regex-cleanup",
        {"path": "/admin/regex_cleanup"},
        "prompts",
        snake_case=True,
        json_body="optional",
    ),
    HttpRoute("admin-keys", {"path_separated_prefix": "/admin/keys"}, "access", json_body="optional"),
    HttpRoute("admin-policy", {"path": "/admin/policy"}, "access", idempotent=True),
    HttpRoute("admin-sessions", {"path_separated_prefix": "/admin/sessions"}, "access", idempotent=True),
    # The llm service's own deadline (SPARK_LLM_TIMEOUT_S) ends slow completions; the route allows more.
    HttpRoute(
        "llm-chat",
        {"path": "/v1/chat/completions"},
        "llm",
        body_limit="llm",
        timeout_s=600.0,
        stream_path="/v1/chat/completions:stream",
        error_format="openai",
    ),
    HttpRoute(
        "llm-chat-stream",
        {"path": "/v1/chat/completions:stream"},
        "llm",
        body_limit="llm",
        streaming=True,
        error_format="openai",
    ),
    # The Spark runtime reads the suite's shape.
    HttpRoute("spark-llm", {"path": "/_spark/llm"}, "llm", body_limit="llm", timeout_s=600.0),
    HttpRoute(
        "llm-embeddings", {"path": "/v1/embeddings"}, "llm", body_limit="llm", timeout_s=600.0, error_format="openai"
    ),
    HttpRoute("llm-models", {"path": "/v1/models"}, "llm", snake_case=True, idempotent=True, error_format="openai"),
    HttpRoute(
        "llm-messages",
        {"path": "/v1/messages"},
        "llm",
        body_limit="llm",
        timeout_s=600.0,
        stream_path="/v1/messages:stream",
        error_format="anthropic",
    ),
    HttpRoute(
        "llm-messages-stream",
        {"path": "/v1/messages:stream"},
        "llm",
        body_limit="llm",
        streaming=True,
        error_format="anthropic",
    ),
    HttpRoute("llm-usage", {"path": "/v1/usage"}, "llm", snake_case=True, idempotent=True),
    HttpRoute("llm-providers", {"path": "/v1/providers"}, "llm", snake_case=True, idempotent=True),
    # 413 for an oversized image comes through `x-http-status`.
    HttpRoute(
        "vision-analyze",
        {"path": "/v1/vision/analyze"},
        "vision",
        body_limit="vision",
        snake_case=True,
        timeout_s=600.0,
    ),
    HttpRoute(
        "vision-stream",
        {"path": "/v1/vision/stream"},
        "vision",
        body_limit="vision",
        streaming=True,
    ),
)

DIRECT_REPLIES: tuple[DirectReply, ...] = (
    # `encodeURIComponent("")` leaves the key segment empty; no template matches it.
    DirectReply("spark-kv-empty-key", {"path": "/_spark/kv/"}, 400, "key must not be empty"),
    DirectReply("runtime-kv-empty-key", {"safe_regex": {"regex": "/runtime/[^/]+/kv/"}}, 400, "key must not be empty"),
    # A `/runtime/{app}/...` segment that no app name can be: empty, starting with a dot, or holding another
    # character than A-Za-z0-9._- (its length, over 64, the services check: RE2 programs must stay small).
    DirectReply(
        "runtime-invalid-app",
        {"safe_regex": {"regex": "/runtime/([.][^/]*|[^/]*[^-A-Za-z0-9._/][^/]*)?/(kv|db|user|loaded)(/.*)?"}},
        400,
        "app must be 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-', not starting with '.'",
    ),
    # OpenAI SDKs call it for `client.responses`: say what to use instead of a bare 404.
    DirectReply(
        "openai-responses",
        {"path_separated_prefix": "/v1/responses"},
        400,
        "the Responses API (/v1/responses) is not supported by this gateway: use POST /v1/chat/completions",
        error_format="openai",
    ),
)


def route_for_path(path: str) -> HttpRoute | None:
    """The route class that serves a path template (its variables match like any segment), if any."""
    for route in HTTP_ROUTES:
        exact, prefix, regex = (route.match.get(kind) for kind in ("path", "path_separated_prefix", "safe_regex"))
        if path == exact or (isinstance(prefix, str) and (path == prefix or path.startswith(prefix + "/"))):
            return route
        # A template's `{variable}` holds no slash, so it matches a regex's `[^/]+` as a segment would.
        if isinstance(regex, dict) and re.fullmatch(regex["regex"], path):
            return route
    return None


GRPC_SERVICES: dict[str, tuple[str, ...]] = {
    "kv": ("spark.kv.v1.KvService",),
    "llm": ("spark.llm.v1.LlmService",),
    "prompts": ("spark.prompts.v1.PromptsService",),
    "vision": ("spark.vision.v1.VisionService",),
    "access": ("spark.access.v1.AccessService",),
    "meta": (
        "spark.meta.v1.MetaService",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
        "grpc.health.v1.Health",
    ),
}

# The gRPC services the transcoder exposes over HTTP.
TRANSCODED_SERVICES: tuple[str, ...] = (
    "spark.access.v1.AccessService",
    "spark.kv.v1.KvService",
    "spark.llm.v1.LlmService",
    "spark.meta.v1.MetaService",
    "spark.prompts.v1.PromptsService",
    "spark.vision.v1.VisionService",
)


# The hosted app's status, as the Spark runtime's own server answers it (edge/app_routes.py).
APP_STATUS_PATH = "/_spark/status"
# Where a page load of an app that needs a session goes (the access service's OpenPage, with `?path=`).
OPEN_PAGE_PATH = "/_spark/auth/page"
# The suite's own paths: a hosted app's files are never served under them, and a path there that no route
# serves stays a JSON 404 (the app's client-side routes answer its index.html everywhere else).
# The hosted app's own calls (its runtime's relative URLs).
APP_PREFIX = "/_spark"
API_PREFIXES: tuple[str, ...] = (APP_PREFIX, "/v1", "/admin", "/runtime")


def api_matches() -> list[dict[str, str]]:
    """Route matches of every API path: the prefixes, the native gRPC services', and each route's own path
    outside them."""
    matches = [{"path_separated_prefix": prefix} for prefix in API_PREFIXES]
    matches += [{"path_separated_prefix": f"/{s}"} for services in GRPC_SERVICES.values() for s in services]
    routes: list[HttpRoute | DirectReply] = [*HTTP_ROUTES, *DIRECT_REPLIES]
    for route in routes:
        for kind in ("path", "path_separated_prefix"):
            value = route.match.get(kind)
            if isinstance(value, str) and not _under_api_prefix(value) and {kind: value} not in matches:
                matches.append({kind: value})
    return matches


def _under_api_prefix(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in API_PREFIXES)


def is_api_path(path: str) -> bool:
    """Whether a path (without its query) is one of the suite's: an app's file there is never served."""
    for match in api_matches():
        exact, prefix = match.get("path"), match.get("path_separated_prefix")
        if path == exact or (prefix is not None and (path == prefix or path.startswith(prefix + "/"))):
            return True
    return False
