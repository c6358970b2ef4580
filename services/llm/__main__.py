"""`python -m services.llm`: runs the llm service until SIGTERM."""

from services.common.server import run_service
from services.llm.config import read_config
from services.llm.server import build_server

if __name__ == "__main__":
    run_service("llm", read_config, build_server)
