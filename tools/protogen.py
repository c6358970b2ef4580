"""The one recipe that regenerates every Python stub and the edge's descriptor set.

Run `python -m tools.protogen` (or `make protos`) after editing anything in
`protos/`. `tests/checks/test_contracts.py` regenerates into a temporary
directory and fails on any difference from the committed `gen/` tree.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import google.api
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
GEN_ROOT = ROOT / "gen"
DESCRIPTOR_PATH = "spark/descriptor_set.pb"
# Error details are not imported by any contract but must be in the edge's
# descriptor set so that `google.rpc` details in errors transcode to JSON.
EXTRA_DESCRIPTOR_INPUTS = ("google/rpc/error_details.proto",)


def _include_dirs() -> list[str]:
    googleapis = Path(google.api.__path__[0]).parent.parent
    well_known = Path(protoc.__file__).parent / "_proto"
    return [str(PROTO_ROOT), str(googleapis), str(well_known)]


def proto_files() -> list[str]:
    return sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))


def _protoc(args: list[str]) -> None:
    includes = [f"-I{d}" for d in _include_dirs()]
    code = protoc.main(["protoc", *includes, *args])
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}: {' '.join(args)}")


def generate(out_dir: Path) -> None:
    """Writes the stubs and the descriptor set for every proto into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = proto_files()
    _protoc([f"--python_out={out_dir}", f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *files])
    _protoc(
        [
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out_dir / DESCRIPTOR_PATH}",
            *files,
            *EXTRA_DESCRIPTOR_INPUTS,
        ]
    )
    for package_dir in {p.parent for p in out_dir.rglob("*_pb2.py")}:
        for directory in [package_dir, *package_dir.parents]:
            if directory == out_dir or out_dir not in directory.parents:
                break
            (directory / "__init__.py").touch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=GEN_ROOT, help="output directory (default: gen/)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "gen"
        generate(staging)
        if args.out.exists():
            shutil.rmtree(args.out)
        shutil.copytree(staging, args.out)
    sys.stderr.write(f"generated {len(proto_files())} protos into {args.out}\n")


if __name__ == "__main__":
    main()
