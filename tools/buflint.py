"""`python -m tools.buflint`: runs `buf lint` (npm @bufbuild/buf) on protos/.

The googleapis protos our contracts import are copied from the
googleapis-common-protos wheel into .cache/googleapis, the second module of
the workspace in buf.yaml, so buf never needs its registry.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import google.api

from tools.protogen import ROOT

BUF = ROOT / "tools" / "node" / "node_modules" / ".bin" / "buf"
VENDORED = ROOT / ".cache" / "googleapis"


def vendor_googleapis() -> None:
    source = Path(google.api.__path__[0]).parent
    for package in ("api", "rpc"):
        target = VENDORED / "google" / package
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source / package, target, ignore=shutil.ignore_patterns("*.py", "*.pyi", "__pycache__"))


def lint() -> subprocess.CompletedProcess[str]:
    if not BUF.exists():
        raise SystemExit(f"{BUF} is missing: run `make test-deps`")
    vendor_googleapis()
    return subprocess.run(
        [str(BUF), "lint", "--path", "protos/spark"], cwd=ROOT, capture_output=True, text=True, check=False
    )


def main() -> None:
    result = lint()
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    raise SystemExit(result.returncode)


if __name__ == "__main__":
    main()
