"""Which Spark app the suite hosts, and the rule for app names.

Every service, the edge and the launcher read the hosted app's name here, so that all of them agree: it is
`SPARK_APP_NAME`, else the `app` of the `runtime.config.json` in the app's repository root (the parent of
`SPARK_APP_DIR`, the `dist/` of `npm run build`, which is where the Spark vite plugin reads that file), else
`default`. The app `default` keeps the store layout of suites that hosted no named app, so an upgraded suite
serves its existing data as the default app's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

from services.common.config import EnvReader
from services.common.errors import FieldViolation, InvalidArgument

# The gRPC metadata key (and HTTP header) that names the app a call is for, where a path does not.
APP_HEADER = "x-spark-app"
# The app whose data lives in the store's original layout.
DEFAULT_APP = "default"
# The file of a Spark app's repository that names the app (`{"app": "<name>", ...}`).
RUNTIME_CONFIG = "runtime.config.json"
APP_NAME_MAX = 64
# `/runtime/{app}/{service}/...`: the Spark vite plugin's dev proxy sends `/_spark/{service}/...` there.
RUNTIME_PREFIX = "/runtime/"

_APP_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
APP_NAME_RULE = "1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-', not starting with '.'"


def valid_app_name(name: str) -> bool:
    """True if `name` is an app name: 1 to 64 of `[A-Za-z0-9._-]`, not starting with a dot."""
    return _APP_NAME.fullmatch(name) is not None


def app_of_path(path: str) -> str | None:
    """The `{app}` segment of a `/runtime/{app}/...` path (percent-decoded, not checked), or None for any other
    path: the app a request through the edge is for when its path names one (`x-envoy-original-path`)."""
    if not path.startswith(RUNTIME_PREFIX):
        return None
    segment = path[len(RUNTIME_PREFIX) :].split("?", 1)[0].split("/", 1)[0]
    return unquote(segment, errors="surrogateescape")


def app_of_call(requested: str, original_path: str | None, hosted_app: str) -> str:
    """The app a call is for: `requested` (a request's `app` field, bound from `/runtime/{app}/...`), or the
    hosted app where it is empty. Raises InvalidArgument naming `app` for what is not an app name.

    Through the edge (`original_path`, the `x-envoy-original-path` the transcoder keeps) the path decides:
    `?app=` may neither name an app on a `/_spark/...` path (the hosted app's) nor override the app of a
    `/runtime/{app}/...` path. Native gRPC callers (no original path) name any app in the field.
    """
    if original_path is not None:
        named = app_of_path(original_path)
        if named is None and requested:
            raise _app_error(
                "app is named by /runtime/{app}/ paths; /_spark/ paths serve the hosted app", "FIELD_IN_QUERY"
            )
        if named is not None and named != requested:
            raise _app_error("app is part of the path and may not also be given as a query parameter", "FIELD_IN_QUERY")
    if not requested:
        return hosted_app
    if not valid_app_name(requested):
        raise _app_error(f"app must be {APP_NAME_RULE}", "INVALID_APP")
    return requested


def _app_error(message: str, reason: str) -> InvalidArgument:
    return InvalidArgument(message, reason=reason, violations=(FieldViolation("app", message),))


def read_app_name(env: EnvReader | Mapping[str, str]) -> str:
    """The hosted app's name from `SPARK_APP_NAME`, else `runtime.config.json`'s `app` beside `SPARK_APP_DIR`,
    else `default`.

    Given an EnvReader, an invalid name is recorded as one of its problems (and `default` returned); given a
    plain mapping, it raises ConfigError at once.
    """
    if isinstance(env, EnvReader):
        return _read(env)
    reader = EnvReader(env)
    name = _read(reader)
    reader.finish()
    return name


def _read(env: EnvReader) -> str:
    explicit = env.optional_text("SPARK_APP_NAME")
    if explicit is not None:
        if valid_app_name(explicit):
            return explicit
        env.problem(f"SPARK_APP_NAME={explicit!r} is not an app name ({APP_NAME_RULE})")
        return DEFAULT_APP
    app_dir = env.optional_text("SPARK_APP_DIR")
    if app_dir is None:
        return DEFAULT_APP
    config_file = Path(app_dir).expanduser().resolve().parent / RUNTIME_CONFIG
    name = _configured_name(env, config_file)
    if name is None:
        return DEFAULT_APP
    if valid_app_name(name):
        return name
    env.problem(f"the app {name!r} of {config_file} is not an app name ({APP_NAME_RULE}); set SPARK_APP_NAME")
    return DEFAULT_APP


def _configured_name(env: EnvReader, config_file: Path) -> str | None:
    """The `app` of a runtime.config.json as written (None where the file or the field is absent)."""
    try:
        document = json.loads(config_file.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as error:
        env.problem(f"{config_file} cannot be read: {error.strerror or error}")
        return None
    except ValueError:
        env.problem(f"{config_file} is not JSON")
        return None
    name = document.get("app") if isinstance(document, dict) else None
    if name is None or isinstance(name, str):
        return name
    env.problem(f"the app {name!r} of {config_file} is not a string; set SPARK_APP_NAME")
    return None
