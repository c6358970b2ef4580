"""The contracts: committed stubs match the protos, and the protos pass buf lint."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from tools import buflint, protogen

pytestmark = pytest.mark.checks


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_committed_stubs_match_the_protos(tmp_path: Path) -> None:
    protogen.generate(tmp_path)
    committed = _files(protogen.GEN_ROOT)
    fresh = _files(tmp_path)
    assert committed == fresh, "stubs added or removed: run `make protos`"
    drifted = [
        name for name in sorted(fresh) if not filecmp.cmp(tmp_path / name, protogen.GEN_ROOT / name, shallow=False)
    ]
    assert drifted == [], f"stubs drifted from the protos: {drifted}; run `make protos`"


def test_descriptor_set_carries_every_service_and_error_details(tmp_path: Path) -> None:
    file_set = descriptor_pb2.FileDescriptorSet.FromString((protogen.GEN_ROOT / protogen.DESCRIPTOR_PATH).read_bytes())
    names = {f.name for f in file_set.file}
    assert {"spark/kv/v1/kv.proto", "spark/meta/v1/meta.proto", "google/rpc/error_details.proto"} <= names
    kv = next(f for f in file_set.file if f.name == "spark/kv/v1/kv.proto")
    assert kv.source_code_info.location, "descriptor set must include source info (comments)"


def test_buf_lint_passes() -> None:
    result = buflint.lint()
    assert result.returncode == 0, result.stdout + result.stderr
