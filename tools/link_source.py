"""Makes the checkout importable from the virtualenv that runs this, without building it.

Writes `spark-services.pth` into the environment's site-packages: the checkout
(packages `services`, `edge`, `launcher`, `tools`, `tests`) and `gen/` (the
generated `spark` stubs, which protoc imports as `spark.<svc>.v1`). This is an
editable install with no build step, so `make run` needs nothing beyond the
locked wheels.

    python -m tools.link_source [ROOT]     # ROOT defaults to this checkout
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

PTH_NAME = "spark-services.pth"


def link(root: Path) -> Path:
    pth = Path(sysconfig.get_paths()["purelib"]) / PTH_NAME
    pth.write_text(f"{root}\n{root / 'gen'}\n")
    return pth


if __name__ == "__main__":
    link(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
