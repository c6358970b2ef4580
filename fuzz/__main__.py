"""`python -m fuzz <target> [libFuzzer flags and corpus directories]`, e.g.

    python -m fuzz multipart -max_total_time=120 -artifact_prefix=/tmp/crashes/ /tmp/multipart-corpus

libFuzzer adds what it finds to the first corpus directory: pass a scratch copy of `fuzz/corpus/<target>`, and
`-artifact_prefix` keeps crash files out of the working tree. Unless `-dict=` is given, the JSON tokens of
`dicts/json.dict` and the target's own `dicts/<target>.dict` guide the mutations. Only `services` is
instrumented for coverage: it is what the targets are about, and instrumenting the SDKs would slow every start.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

import atheris  # type: ignore[import-untyped]  # no stubs among the dev dependencies

from fuzz import TARGETS

DICTS = Path(__file__).parent / "dicts"


def _dictionary(target: str) -> str:
    """The dictionary files of a target merged into one, since libFuzzer reads a single `-dict`."""
    sources = [path for path in (DICTS / "json.dict", DICTS / f"{target}.dict") if path.exists()]
    merged = Path(tempfile.gettempdir()) / f"spark-fuzz-{target}.dict"
    merged.write_text("\n".join(path.read_text() for path in sources))
    return str(merged)


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: python -m fuzz {{{','.join(TARGETS)}}} [libFuzzer flags] [corpus directories]")
    target, flags = argv[1], argv[2:]
    if not any(flag.startswith("-dict=") for flag in flags):
        flags.append(f"-dict={_dictionary(target)}")
    with atheris.instrument_imports(include=["services"]):
        module = importlib.import_module(f"fuzz.{target}")
    atheris.Setup([argv[0], *flags], module.TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
