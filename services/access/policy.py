"""The access policy file: rate limits per route class, read and checked once at start-up."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_LIMITS_PATH = Path(__file__).with_name("limits.toml")
# Every route class of the edge (edge/routes.py); the file must limit each.
ROUTE_CLASSES = ("public", "spark", "kv", "prompts", "llm", "vision", "admin")
WINDOWS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
MAX_LIMIT = 1_000_000_000


class PolicyError(ValueError):
    """The limits file is missing, unreadable or inconsistent; the message says where."""


@dataclass(frozen=True, slots=True)
class ClassLimit:
    """How many requests one user or one address may make in one window of a route class."""

    route_class: str
    per_user: int
    per_address: int
    window: str

    @property
    def window_s(self) -> int:
        return WINDOWS[self.window]


@dataclass(frozen=True, slots=True)
class Limits:
    classes: Mapping[str, ClassLimit]
    auth_failures_per_address: int
    # Sign-in starts and callbacks per client address and minute (GET /_spark/auth/login and /callback).
    sign_ins_per_address: int = 30


def load_limits(path: Path) -> Limits:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise PolicyError(f"{path}: {error}") from None
    return parse_limits(document, str(path))


def parse_limits(document: Mapping[str, Any], where: str) -> Limits:
    unknown = set(document) - {"classes", "auth_failures_per_address", "sign_ins_per_address"}
    if unknown:
        raise PolicyError(f"{where}: unknown settings {sorted(unknown)}")
    classes = document.get("classes")
    if not isinstance(classes, dict):
        raise PolicyError(f"{where}: no [classes.<name>] tables")
    missing = [name for name in ROUTE_CLASSES if name not in classes]
    extra = sorted(set(classes) - set(ROUTE_CLASSES))
    if missing or extra:
        raise PolicyError(
            f"{where}: the classes must be exactly {', '.join(ROUTE_CLASSES)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(extra)}" if extra else "")
        )
    return Limits(
        classes={name: _class_limit(name, classes[name], where) for name in ROUTE_CLASSES},
        auth_failures_per_address=_count(document.get("auth_failures_per_address", 30), where, "auth_failures"),
        sign_ins_per_address=_count(document.get("sign_ins_per_address", 30), where, "sign_ins_per_address"),
    )


def _class_limit(name: str, table: Any, where: str) -> ClassLimit:
    if not isinstance(table, dict):
        raise PolicyError(f"{where}: classes.{name} is not a table")
    unknown = set(table) - {"per_user", "per_address", "window"}
    if unknown:
        raise PolicyError(f"{where}: classes.{name} has unknown keys {sorted(unknown)}")
    window = table.get("window", "minute")
    if window not in WINDOWS:
        raise PolicyError(f"{where}: classes.{name}.window must be one of {', '.join(WINDOWS)}, not {window!r}")
    return ClassLimit(
        route_class=name,
        per_user=_count(table.get("per_user"), where, f"classes.{name}.per_user"),
        per_address=_count(table.get("per_address"), where, f"classes.{name}.per_address"),
        window=window,
    )


def _count(value: Any, where: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise PolicyError(f"{where}: {name} must be an integer from 1 to {MAX_LIMIT}, not {value!r}")
    return value
