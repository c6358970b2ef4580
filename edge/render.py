"""`python -m edge.render --out FILE`: writes the edge's Envoy config from the environment."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path

from edge.envoy import render
from edge.settings import read_settings
from services.common.descriptors import default_descriptor_path


def write_config(out: Path, descriptor_path: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Renders the config from `environ` (default: the process environment) and writes it to `out`."""
    settings = read_settings(descriptor_path or default_descriptor_path(), environ)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(render(settings), indent=2) + "\n", encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="where to write the config (JSON, valid YAML)")
    parser.add_argument("--descriptor", type=Path, default=None, help="descriptor set path as Envoy will see it")
    args = parser.parse_args()
    write_config(args.out, args.descriptor)


if __name__ == "__main__":
    main()
