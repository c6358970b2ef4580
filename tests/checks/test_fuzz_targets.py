"""The fuzz targets in `fuzz/`: every seed input passes in-process, and each target survives a short atheris run.

The runs are brief, a smoke test of the targets and a replay of the seeds (which include every crash found so
far); finding new bugs takes longer runs: `python -m fuzz <target> -max_total_time=600 <scratch corpus>`.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz import TARGETS
from tests.support.suite import ROOT

pytestmark = pytest.mark.checks

CORPUS = ROOT / "fuzz" / "corpus"
# Seconds of fuzzing per target after its start-up, so that all of them together take well under a minute.
FUZZ_SECONDS = 1
SEEDS = [(target, seed.name) for target in TARGETS for seed in sorted((CORPUS / target).iterdir())]


def test_every_target_has_a_seed_corpus() -> None:
    for target in TARGETS:
        assert len(list((CORPUS / target).iterdir())) >= 5, target
    assert sorted(path.name for path in CORPUS.iterdir()) == sorted(TARGETS)


@pytest.mark.parametrize(("target", "seed"), SEEDS, ids=[f"{target}/{seed}" for target, seed in SEEDS])
def test_seed_passes_in_process(target: str, seed: str) -> None:
    module = importlib.import_module(f"fuzz.{target}")
    module.TestOneInput((CORPUS / target / seed).read_bytes())


@pytest.mark.parametrize("target", TARGETS)
def test_target_survives_a_short_fuzzing_run(target: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris has wheels for x86-64 Linux only")
    # libFuzzer adds what it finds to its first corpus directory: a copy keeps the repository's as it is.
    corpus = shutil.copytree(CORPUS / target, tmp_path / "corpus")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    command = [
        sys.executable,
        "-m",
        "fuzz",
        target,
        "-seed=1",
        f"-max_total_time={FUZZ_SECONDS}",
        "-timeout=10",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={artifacts}/",
        str(corpus),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    crashes = [f"{path.name}: {path.read_bytes()!r}" for path in artifacts.iterdir()]
    assert result.returncode == 0, "\n".join([*crashes, result.stderr[-6000:]])
    assert "Done " in result.stderr
