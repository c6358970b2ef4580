"""`python -m services.prompts`: runs the prompts service until SIGTERM."""

from services.common.server import run_service
from services.prompts.config import read_config
from services.prompts.server import build_server

if __name__ == "__main__":
    run_service("prompts", read_config, build_server)
