"""A hosted Spark app's files (`SPARK_APP_DIR`, the `dist/` of `npm run build`), as the edge serves them.

Envoy serves the files itself, from memory, with no Python process on the way: at start, the launcher (or
`python -m edge`) copies the app into a snapshot directory, and the edge's routes answer each file with a
`direct_response` read from there (edge/app_routes.py). The snapshot holds the regular files of the app and
nothing else: no dotfile, no symlink that leads out of it, and never the `proxy.js` and `package.json` that the
Spark vite plugin writes at its root for its own Node server. Beside each file worth it, its gzip and brotli
encodings, made once here; every variant has its own ETag (the hash of the file's bytes, and the coding).

Layout of a snapshot (`SPARK_APP_SNAPSHOT`): the app's tree as served (the access service reads its
`index.html` there), and `.spark/` with `manifest.json` and `encoded/<sha256>.{gz,br}`. Taking a snapshot into
the same directory again reuses the encodings of unchanged files, so a restart costs no recompression.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

# No type information ships with brotli's bindings.
import brotli  # type: ignore[import-untyped]

from edge.routes import is_api_path
from services.common.config import EnvReader

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_MAX_FILES = 1000
DEFAULT_MAX_BYTES = 64 * MIB
# Envoy's direct responses are sized in a uint32; the snapshot's total stays well below.
MAX_BYTES_CEILING = 1024 * MIB
SPARK_DIR = ".spark"
MANIFEST = f"{SPARK_DIR}/manifest.json"
ENCODED_DIR = f"{SPARK_DIR}/encoded"
MANIFEST_VERSION = 1
# The Spark vite plugin's server files (`node proxy.js` serves the build): never the app's.
SERVER_FILES = frozenset({"proxy.js", "package.json"})
INDEX = "index.html"
# Vite writes content-hashed names here: a changed file is a new URL, so a copy may be kept for a year.
ASSETS_PREFIX = "/assets/"
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
# Everything else is revalidated on every use (a 304 when its ETag still holds).
CACHE_REVALIDATE = "no-cache"
# Smaller files gain too little from an encoding to be worth a variant; so does an encoding that saves less.
MIN_ENCODED_SIZE = 256
MAX_ENCODED_RATIO = 0.9
# The codings the edge offers, in the order it prefers them, with their file suffixes.
CODINGS: tuple[tuple[str, str], ...] = (("br", "br"), ("gzip", "gz"))
OCTET_STREAM = "application/octet-stream"

# Content types by file extension (a fixed table, not the host's mime.types, so every host serves the same).
CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".cjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".bmp": "image/bmp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".eot": "application/vnd.ms-fontobject",
    ".wasm": "application/wasm",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".ogg": "audio/ogg",
    ".m4a": "audio/mp4",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
}
# Types whose bytes compress (text, and binary formats that are not compressed already).
COMPRESSIBLE = frozenset(
    {
        "application/json",
        "application/manifest+json",
        "application/xml",
        "image/svg+xml",
        "image/x-icon",
        "image/bmp",
        "font/ttf",
        "font/otf",
        "application/vnd.ms-fontobject",
        "application/wasm",
    }
)
# Characters a browser leaves as they are in a URL path (RFC 3986 pchar); the others are percent-encoded.
URL_SAFE = "/!$&'()*+,;=:@-._~"


class SnapshotError(ValueError):
    """The app directory cannot be served as configured; the message names the setting to change."""


@dataclass(frozen=True, slots=True)
class SnapshotLimits:
    """How much of an app the edge takes (Envoy holds every file in memory)."""

    max_files: int = DEFAULT_MAX_FILES
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass(frozen=True, slots=True)
class Variant:
    """One representation of a file: its content coding (None: as it is), bytes and ETag."""

    coding: str | None
    path: Path
    size: int
    etag: str


@dataclass(frozen=True, slots=True)
class StaticFile:
    """A file of the app and how it is served."""

    # Relative to the app's root, with `/` separators.
    name: str
    url_path: str
    content_type: str
    cache_control: str
    # The encoded ones first, in the order of CODINGS; the file as it is last.
    variants: tuple[Variant, ...]

    @property
    def identity(self) -> Variant:
        return self.variants[-1]


@dataclass(frozen=True, slots=True)
class StaticSite:
    """A snapshot of an app, ready to serve."""

    root: Path
    source: str
    files: tuple[StaticFile, ...]

    @property
    def index(self) -> StaticFile:
        return next(f for f in self.files if f.name == INDEX)

    @property
    def largest_body(self) -> int:
        return max(v.size for f in self.files for v in f.variants)

    @property
    def total_bytes(self) -> int:
        return sum(f.identity.size for f in self.files)


def read_limits(env: EnvReader) -> SnapshotLimits:
    """`SPARK_APP_MAX_FILES` and `SPARK_APP_MAX_BYTES`."""
    return SnapshotLimits(
        max_files=env.integer("SPARK_APP_MAX_FILES", DEFAULT_MAX_FILES, minimum=1, maximum=100_000),
        max_bytes=env.integer("SPARK_APP_MAX_BYTES", DEFAULT_MAX_BYTES, minimum=1, maximum=MAX_BYTES_CEILING),
    )


def content_type(name: str) -> str:
    """The Content-Type of a file by its extension (case-insensitive); unknown ones are octet streams."""
    return CONTENT_TYPES.get(PurePosixPath(name).suffix.lower(), OCTET_STREAM)


def compressible(content_type_value: str) -> bool:
    media = content_type_value.split(";", 1)[0]
    return media.startswith("text/") or media in COMPRESSIBLE


def url_path(name: str) -> str:
    """The path a browser asks for a file by (percent-encoded as browsers encode it)."""
    return "/" + quote(name, safe=URL_SAFE)


def cache_control(path: str) -> str:
    return CACHE_IMMUTABLE if path.startswith(ASSETS_PREFIX) else CACHE_REVALIDATE


def etag(sha256: str, suffix: str | None = None) -> str:
    """A strong ETag from the hash of a file's bytes; each encoding's has its suffix (its bytes differ)."""
    return f'"{sha256[:32]}{"-" + suffix if suffix else ""}"'


def encode(coding: str, data: bytes, text: bool) -> bytes:
    if coding == "br":
        return bytes(brotli.compress(data, mode=brotli.MODE_TEXT if text else brotli.MODE_GENERIC, quality=11))
    return gzip.compress(data, compresslevel=9, mtime=0)


@dataclass(frozen=True, slots=True)
class _Found:
    name: str
    path: Path
    size: int


def _collect(source: Path) -> tuple[list[_Found], list[str]]:
    """The files of the app to serve, and what was left out and why (for one log line each)."""
    root = source.resolve()
    found: list[_Found] = []
    skipped: list[str] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(directory)
        relative_dir = here.relative_to(root)
        for dirname in list(dirnames):
            why = "a dot directory" if dirname.startswith(".") else None
            if why is None and (here / dirname).is_symlink():
                why = "a symlinked directory, not followed"
            if why is not None:
                skipped.append(f"{(relative_dir / dirname).as_posix()}/ ({why})")
                dirnames.remove(dirname)
        dirnames.sort()
        for filename in sorted(filenames):
            name = (relative_dir / filename).as_posix()
            why = _left_out(root, here / filename, name, filename)
            if why is not None:
                skipped.append(f"{name} ({why})")
                continue
            found.append(_Found(name, here / filename, (here / filename).stat().st_size))
    return found, skipped


def _left_out(root: Path, path: Path, name: str, filename: str) -> str | None:
    """Why a file is not served, or None if it is."""
    if filename.startswith("."):
        return "a dotfile"
    if name in SERVER_FILES:
        return "the Spark plugin's server file"
    if not _printable_utf8(name):
        return "a name that is not printable UTF-8"
    if is_api_path(url_path(name)):
        return "under a path of the suite's API"
    return _symlink_problem(root, path) if path.is_symlink() else None if path.is_file() else "not a regular file"


def _printable_utf8(name: str) -> bool:
    """False for names with control characters, or bytes that are not UTF-8 (which os.walk keeps as lone
    surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return name.isprintable()


def _symlink_problem(root: Path, path: Path) -> str | None:
    """Why a symlink is not served: it must lead to a regular file of the app that is no dotfile."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return "a broken symlink"
    if not target.is_relative_to(root):
        return "a symlink that leads out of the app"
    if any(part.startswith(".") for part in target.relative_to(root).parts):
        return "a symlink to a dotfile"
    return None if target.is_file() else "a symlink to no regular file"


def _check_limits(source: Path, found: list[_Found], limits: SnapshotLimits) -> None:
    if len(found) > limits.max_files:
        raise SnapshotError(
            f"SPARK_APP_DIR={source} holds {len(found)} files to serve, more than SPARK_APP_MAX_FILES="
            f"{limits.max_files}: raise SPARK_APP_MAX_FILES, or serve a smaller build"
        )
    total = sum(f.size for f in found)
    if total > limits.max_bytes:
        raise SnapshotError(
            f"SPARK_APP_DIR={source} holds {total:,} bytes to serve, more than SPARK_APP_MAX_BYTES="
            f"{limits.max_bytes:,} (the edge keeps every file in memory): raise SPARK_APP_MAX_BYTES, or serve a "
            "smaller build"
        )


def take_snapshot(source: Path, target: Path, limits: SnapshotLimits) -> StaticSite:
    """Copies the app at `source` into `target` (replacing what was there) with its encodings; raises
    SnapshotError, naming the setting, if the app cannot be served."""
    if not source.is_dir():
        raise SnapshotError(f"SPARK_APP_DIR={source} is not a directory (the dist/ of `npm run build`)")
    here, there = source.resolve(), target.resolve()
    if here.is_relative_to(there) or there.is_relative_to(here):
        # Taking the snapshot replaces its directory: never the app's own.
        raise SnapshotError(
            f"SPARK_APP_SNAPSHOT={target} and SPARK_APP_DIR={source} overlap: the snapshot needs a directory of "
            "its own (SPARK_APP_SNAPSHOT is where the edge copies SPARK_APP_DIR to)"
        )
    found, skipped = _collect(source)
    if not any(f.name == INDEX for f in found):
        raise SnapshotError(
            f"SPARK_APP_DIR={source} has no {INDEX} at its root: point it at the dist/ of `npm run build`"
        )
    _check_limits(source, found, limits)
    for reason in skipped:
        logger.warning("not served from the app: %s", reason, extra={"app_dir": str(source)})
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.parent / f".{target.name}.new-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    (building / ENCODED_DIR).mkdir(parents=True)
    entries = [_copy(item, building, target) for item in found]
    manifest = {"version": MANIFEST_VERSION, "source": str(source.resolve()), "files": entries}
    (building / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    _replace(building, target)
    site = load_snapshot(target)
    logger.info(
        "app snapshot of %s: %d files, %d bytes",
        source,
        len(site.files),
        site.total_bytes,
        extra={"app_dir": str(source), "snapshot": str(target)},
    )
    return site


def _copy(item: _Found, building: Path, previous: Path) -> dict[str, object]:
    """Copies one file into the snapshot being built, with the encodings worth keeping; its manifest entry."""
    data = item.path.read_bytes()
    destination = building / item.name
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    kind = content_type(item.name)
    encodings: dict[str, int] = {}
    if len(data) >= MIN_ENCODED_SIZE and compressible(kind):
        for coding, suffix in CODINGS:
            blob = f"{ENCODED_DIR}/{digest}.{suffix}"
            if (building / blob).exists():
                encodings[coding] = (building / blob).stat().st_size
                continue
            reused = previous / blob
            encoded = reused.read_bytes() if reused.is_file() else encode(coding, data, kind.startswith("text/"))
            if len(encoded) <= len(data) * MAX_ENCODED_RATIO:
                (building / blob).write_bytes(encoded)
                encodings[coding] = len(encoded)
    return {"name": item.name, "size": len(data), "sha256": digest, "encodings": encodings}


def _replace(building: Path, target: Path) -> None:
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    building.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def load_snapshot(root: Path) -> StaticSite:
    """The site of a snapshot taken before; raises SnapshotError if it is missing or damaged."""
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("version") != MANIFEST_VERSION:
            raise SnapshotError(f"SPARK_APP_SNAPSHOT={root} was written by another version: take it again")
        files = tuple(_static_file(root, entry) for entry in manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        if isinstance(error, SnapshotError):
            raise
        raise SnapshotError(f"SPARK_APP_SNAPSHOT={root} is not an app snapshot ({error})") from error
    if not any(f.name == INDEX for f in files):
        raise SnapshotError(f"SPARK_APP_SNAPSHOT={root} has no {INDEX}")
    return StaticSite(root=root.resolve(), source=str(manifest.get("source", "")), files=files)


def _static_file(root: Path, entry: dict[str, object]) -> StaticFile:
    name, digest, size = str(entry["name"]), str(entry["sha256"]), int(str(entry["size"]))
    encodings = entry.get("encodings") or {}
    if not isinstance(encodings, dict):
        raise ValueError(f"the encodings of {name} are not an object")
    variants = [
        Variant(coding, root / ENCODED_DIR / f"{digest}.{suffix}", int(encodings[coding]), etag(digest, suffix))
        for coding, suffix in CODINGS
        if coding in encodings
    ]
    variants.append(Variant(None, root / name, size, etag(digest)))
    for variant in variants:
        if not variant.path.is_file():
            raise ValueError(f"{variant.path} is missing")
    path = url_path(name)
    return StaticFile(
        name=name,
        url_path=path,
        content_type=content_type(name),
        cache_control=cache_control(path),
        variants=tuple(variants),
    )
