"""Each part's own settings reader, by name: what the deployment tests hand a manifest's environment to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge.settings import read_settings
from services.access.config import read_config as read_access_config
from services.common.descriptors import default_descriptor_path
from services.kv.config import read_config as read_kv_config
from services.llm.config import read_config as read_llm_config
from services.meta.config import read_config as read_meta_config
from services.prompts.config import read_config as read_prompts_config
from services.vision.config import read_config as read_vision_config

Reader = Callable[[dict[str, str]], Any]

SERVICE_READERS: dict[str, Reader] = {
    "meta": read_meta_config,
    "kv": read_kv_config,
    "llm": read_llm_config,
    "prompts": read_prompts_config,
    "vision": read_vision_config,
    "access": read_access_config,
}
READERS: dict[str, Reader] = {**SERVICE_READERS, "edge": lambda env: read_settings(default_descriptor_path(), env)}
