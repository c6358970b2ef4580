"""`python -m services.vision`: runs the vision service until SIGTERM."""

from services.common.server import run_service
from services.vision.config import read_config
from services.vision.server import build_server

if __name__ == "__main__":
    run_service("vision", read_config, build_server)
