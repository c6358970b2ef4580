"""`python -m launcher` (`make run`): starts the whole suite behind the Envoy edge."""

from __future__ import annotations

import asyncio
import sys

from launcher.config import inherited_environment, read_config
from launcher.supervision import run
from services.common.config import ConfigError
from services.common.logs import setup_logging


def main() -> None:
    environ = inherited_environment()
    try:
        config = read_config(environ)
    except ConfigError as error:
        sys.stderr.write(f"spark-services: {error}\n")
        raise SystemExit(2) from error
    setup_logging("launcher", config.log_level)
    raise SystemExit(asyncio.run(run(config, environ)))


if __name__ == "__main__":
    main()
