"""Fuzz targets for the suite's body parsers, run with atheris: `python -m fuzz <target> [libFuzzer flags]`.

Each target module has `TestOneInput(data: bytes)`, which hands one input to parsers through their public
functions and checks their contract: a valid result, or the domain error the suite answers with a 4xx
(`services.common.errors`). Any other exception, or a broken round-trip property, is a crash, and a crash is
a product bug. Seed inputs live in `corpus/<target>/`; `tests/checks/test_fuzz_targets.py` runs every target
briefly and replays every seed in-process.

The targets import nothing from atheris, so they run without it: only the runner needs it.
"""

from __future__ import annotations

TARGETS = (
    "chat_body",
    "cleanup_rule",
    "embeddings",
    "images",
    "kv_values",
    "llm_streams",
    "messages_body",
    "multipart",
    "prompts",
    "sse",
    "transcoding",
    "vision_request",
)
