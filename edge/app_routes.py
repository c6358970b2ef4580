"""The routes that serve a hosted Spark app at / (its snapshot: edge/static.py), answered by Envoy itself.

Each file is a `direct_response` read from the snapshot when Envoy starts, so serving it costs no Python hop.
A file has one route per variant (brotli, gzip, as it is), picked by `Accept-Encoding`, and before each a
route that answers 304 when `If-None-Match` names that variant's ETag. The files' routes come first (no file
is at an API path: edge/static.py leaves those out). After every API route, in order:
- every API path no route served (`/_spark/*`, `/v1/*`, `/admin/*`, `/runtime/*`, `/healthz`, ...) stays a
  JSON 404, as the transcoder says it (it refuses a path it cannot resolve before the route's own 404);
- a missing file under `/assets/` is a 404 (a stale hashed name: the page asking for it is stale too);
- any other GET or HEAD is a client-side route of the app and answers its index.html.

When `SPARK_APP_ACCESS` is `signed-in` or `owners`, the page loads (`/`, `/index.html` and the client-side
routes) go instead to the access service's OpenPage (`/_spark/auth/page?path=<the path>`), which answers the
page or a redirect to sign in; the other files stay public. Envoy cannot check a session itself.
"""

from __future__ import annotations

import json
import re
from typing import Any

from edge.routes import APP_STATUS_PATH, OPEN_PAGE_PATH, api_matches
from edge.static import ASSETS_PREFIX, INDEX, StaticFile, StaticSite, Variant

Json = dict[str, Any]

# Envoy's default limit on a direct response's body, which the largest file raises.
DEFAULT_DIRECT_BODY_BYTES = 4096
METHOD_GET_OR_HEAD: Json = {"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}
# A coding the client accepts (RFC 9110 12.5.3): named as a token of Accept-Encoding with no `q=0`.
ACCEPTS_CODING = r"(?i)(|.*,)[ \t]*{coding}[ \t]*(;[ \t]*q[ \t]*=[ \t]*(1(\.0*)?|0?\.[0-9]*[1-9][0-9]*)[ \t]*)?(,.*)?"
# Envoy adds a Location to any 3xx direct response; a 304 has none.
NOT_MODIFIED_HEADERS_TO_REMOVE = ["location"]

# Sends a page load to the access service's OpenPage with the path (and query) it was for. The route is found
# again for the new path (Lua's default `clear_route_cache`), so that route's transcoder and Lua apply. A HEAD is
# asked as a GET (the transcoder knows GET rules only); Envoy sends no body to a HEAD request.
OPEN_PAGE_LUA = """
local function escape(text)
  return (string.gsub(text, "[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function envoy_on_request(handle)
  local headers = handle:headers()
  headers:replace(":path", "OPEN_PAGE_PATH?path=" .. escape(headers:get(":path")))
  if headers:get(":method") == "HEAD" then
    headers:replace(":method", "GET")
  end
end
"""


def _header(key: str, value: str) -> Json:
    return {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}


def _regex_header(name: str, regex: str) -> Json:
    return {"name": name, "string_match": {"safe_regex": {"regex": regex}}}


def accepts(coding: str) -> str:
    """The RE2 pattern of an Accept-Encoding value that accepts `coding`."""
    return ACCEPTS_CODING.replace("{coding}", re.escape(coding))


def names_etag(tag: str) -> str:
    """The RE2 pattern of an If-None-Match value that names `tag` (weakly, as RFC 9110 compares it), or `*`."""
    return r"[ \t]*\*[ \t]*|.*" + re.escape(tag) + ".*"


def _variant_routes(name: str, match: Json, file: StaticFile, static_filters: Json) -> list[Json]:
    """The 304 and 200 routes of each of a file's variants, the encoded ones first."""
    routes: list[Json] = []
    several = len(file.variants) > 1
    for variant in file.variants:
        suffix = f"-{variant.coding}" if variant.coding else ""
        headers = [METHOD_GET_OR_HEAD]
        if variant.coding is not None:
            headers.append(_regex_header("accept-encoding", accepts(variant.coding)))
        validators = [_header("etag", variant.etag), _header("cache-control", file.cache_control)]
        if several:
            validators.append(_header("vary", "Accept-Encoding"))
        routes.append(
            {
                "name": f"{name}{suffix}-304",
                "match": {**match, "headers": [*headers, _regex_header("if-none-match", names_etag(variant.etag))]},
                "direct_response": {"status": 304},
                "response_headers_to_add": validators,
                "response_headers_to_remove": NOT_MODIFIED_HEADERS_TO_REMOVE,
                "typed_per_filter_config": static_filters,
            }
        )
        routes.append(
            {
                "name": f"{name}{suffix}",
                "match": {**match, "headers": headers},
                "direct_response": {"status": 200, "body": {"filename": str(variant.path)}},
                "response_headers_to_add": [
                    _header("content-type", file.content_type),
                    *_encoding_header(variant),
                    *validators,
                ],
                "typed_per_filter_config": static_filters,
            }
        )
    return routes


def _encoding_header(variant: Variant) -> list[Json]:
    return [] if variant.coding is None else [_header("content-encoding", variant.coding)]


def status_route(app_name: str, static_filters: Json) -> Json:
    """GET /_spark/status, as the Spark runtime's own server answers it (tools wait on it for a deployed app)."""
    body = json.dumps({"status": "complete", "runtimePermanentName": app_name}, separators=(",", ":"))
    return {
        "name": "app-status",
        "match": {"path": APP_STATUS_PATH, "headers": [METHOD_GET_OR_HEAD]},
        "direct_response": {"status": 200, "body": {"inline_string": body}},
        "response_headers_to_add": [_header("content-type", "application/json"), _header("cache-control", "no-store")],
        "typed_per_filter_config": static_filters,
    }


def open_page_lua() -> str:
    """The Lua source of the page routes of an app that needs a session."""
    return OPEN_PAGE_LUA.replace("OPEN_PAGE_PATH", OPEN_PAGE_PATH)


def app_routes(
    site: StaticSite, *, static_filters: Json, page_filters: Json | None, timeout_s: float
) -> tuple[list[Json], list[Json]]:
    """The app's routes: its files, to come first (no API path is a file's, so they are found without trying
    every API route), and the rest, to follow every API route: the API's 404s, the missing assets and the
    client-side routes. `static_filters` are the per-filter configs of Envoy's own answers (no transcoding);
    `page_filters`, when page loads need a session, those of the routes that send them to OpenPage."""
    index = site.index
    pages = {"/", index.url_path}
    routes: list[Json] = []

    def page_route(name: str, match: Json) -> Json:
        return {
            "name": name,
            "match": {**match, "headers": [METHOD_GET_OR_HEAD]},
            "route": {"cluster": "access", "timeout": f"{timeout_s:g}s"},
            "typed_per_filter_config": page_filters,
        }

    for position, file in enumerate(site.files):
        paths = [file.url_path]
        if file.name == INDEX or file.name.endswith("/" + INDEX):
            # A directory's index answers the directory's path too, as static servers do.
            paths.insert(0, file.url_path.removesuffix(INDEX))
        for number, path in enumerate(paths):
            name = f"app-file-{position}" + (f"-{number}" if number else "")
            if page_filters is not None and path in pages:
                routes.append(page_route(name, {"path": path}))
            else:
                routes += _variant_routes(name, {"path": path}, file, static_filters)
    # One route per API path (a single regex of them all is over Envoy's RE2 program size limit). The
    # transcoder answers first, with its own 404 naming the path; the route's is for a path it resolved.
    tail: list[Json] = [
        {
            "name": f"api-unrouted-{number}",
            "match": match,
            "direct_response": {"status": 404, "body": {"inline_string": "no route serves this path"}},
        }
        for number, match in enumerate(api_matches())
    ]
    tail.append(
        {
            "name": "app-assets-missing",
            "match": {"prefix": ASSETS_PREFIX, "headers": [METHOD_GET_OR_HEAD]},
            "direct_response": {"status": 404, "body": {"inline_string": "no such file in the app"}},
            "typed_per_filter_config": static_filters,
        }
    )
    client_route: Json = {"prefix": "/"}
    if page_filters is not None:
        tail.append(page_route("app-client-route", client_route))
    else:
        tail += _variant_routes("app-client-route", client_route, index, static_filters)
    return routes, tail


def direct_body_limit(site: StaticSite | None) -> int:
    """The route table's `max_direct_response_body_size_bytes`: the largest file's."""
    return DEFAULT_DIRECT_BODY_BYTES if site is None else max(DEFAULT_DIRECT_BODY_BYTES, site.largest_body)
