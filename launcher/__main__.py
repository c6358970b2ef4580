"""`python -m launcher` (`make run`): starts the whole suite behind the Envoy edge.

Refuses to start (exit 2), before any process starts, when the configuration
is invalid (every problem listed at once), a port it would listen on is
taken (naming the setting that chose it and what holds it), or the app of
SPARK_APP_DIR cannot be served (naming the setting to change).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from edge.static import SnapshotError, take_snapshot
from launcher.banner import log_banner
from launcher.config import LauncherConfig, inherited_environment, read_config
from launcher.ports import unavailable
from launcher.supervision import run
from services.common.config import ConfigError
from services.common.logs import setup_logging

logger = logging.getLogger("launcher")


def snapshot_app(config: LauncherConfig) -> None:
    """Copies SPARK_APP_DIR into the run directory before anything starts (edge/static.py); exit 2 naming the
    setting if the app cannot be served."""
    if config.app_dir is None or config.app_snapshot is None:
        return
    try:
        site = take_snapshot(config.app_dir, config.app_snapshot, config.app_limits)
    except SnapshotError as error:
        sys.stderr.write(f"spark-services: {error}\n")
        logger.error("nothing was started: %s", error)
        raise SystemExit(2) from error
    logger.info(
        "serving the app %s from %s: %d files",
        config.app_name,
        config.app_dir,
        len(site.files),
        extra={"app": config.app_name, "app_dir": str(config.app_dir), "snapshot": str(config.app_snapshot)},
    )


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
    snapshot_app(config)
    log_banner(config)
    raise SystemExit(asyncio.run(run(config, environ)))


if __name__ == "__main__":
    main()
