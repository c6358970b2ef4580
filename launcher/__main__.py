"""`python -m launcher` (`make run`): starts the whole suite behind the Envoy edge.

Refuses to start (exit 2), before any process starts, when the configuration
is invalid (every problem listed at once) or a port it would listen on is
taken (naming the setting that chose it and what holds it).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from launcher.banner import log_banner
from launcher.config import inherited_environment, read_config
from launcher.ports import unavailable
from launcher.supervision import run
from services.common.config import ConfigError
from services.common.logs import setup_logging

logger = logging.getLogger("launcher")


def main() -> None:
    environ = inherited_environment()
    try:
        config = read_config(environ)
    except ConfigError as error:
        sys.stderr.write(f"spark-services: {error}\n")
        raise SystemExit(2) from error
    setup_logging("launcher", config.log_level)
    refused = unavailable(config.bindings)
    for problem in refused:
        logger.error(
            "%s",
            problem.message(),
            extra={"port": problem.binding.port, "host": problem.binding.host, "setting": problem.binding.setting},
        )
    if refused:
        logger.error("nothing was started: free the port or choose another with the setting named")
        raise SystemExit(2)
    log_banner(config)
    raise SystemExit(asyncio.run(run(config, environ)))


if __name__ == "__main__":
    main()
