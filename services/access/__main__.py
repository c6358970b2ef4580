"""`python -m services.access`: runs the access service until SIGTERM."""

from services.access.config import read_config
from services.access.server import build_server
from services.common.server import run_service

if __name__ == "__main__":
    run_service("access", read_config, build_server)
