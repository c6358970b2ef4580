"""`python -m services.meta`: runs the meta service until SIGTERM."""

from services.common.server import run_service
from services.meta.config import read_config
from services.meta.server import build_server

if __name__ == "__main__":
    run_service("meta", read_config, build_server)
