"""A throwaway self-signed certificate for tests of the edge's TLS listener (the `openssl` CLI)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for CN=localhost and IP 127.0.0.1, valid for a day."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "the openssl CLI is a test dependency (make test-deps installs it)"
    cert, key = directory / "edge.crt", directory / "edge.key"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key
