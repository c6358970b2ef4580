"""`python -m services.kv`: runs the kv service until SIGTERM."""

from services.common.server import run_service
from services.kv.config import read_config
from services.kv.server import build_server

if __name__ == "__main__":
    run_service("kv", read_config, build_server)
