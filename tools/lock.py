"""The dependency locks: exact versions with hashes, generated from pyproject.toml by uv.

`requirements/run.txt` holds what `make run` installs (the project's
dependencies), `requirements/dev.txt` what `make test` installs (those plus the
`dev` extra, at the same versions), and `requirements/pip.txt` the installer
itself (from `requirements/pip.in`), installed first. Both are universal (every platform Python
3.11 runs on, markers kept) and start with a digest of the dependency lists of
pyproject.toml, so that a test can tell when someone changed a pin there
without running `make lock`.

    python -m tools.lock                       # make lock: regenerate both, keeping every pin that still fits
    python -m tools.lock --upgrade-package X   # move X (and only what X needs) to its newest allowed release
    python -m tools.lock --upgrade             # move everything to its newest allowed release
    python -m tools.lock --check               # exit 1 when pyproject.toml and the locks disagree
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
RUN_LOCK = ROOT / "requirements" / "run.txt"
DEV_LOCK = ROOT / "requirements" / "dev.txt"
PIP_INPUT = ROOT / "requirements" / "pip.in"
PIP_LOCK = ROOT / "requirements" / "pip.txt"
PYTHON_VERSION = "3.11"
DIGEST_PREFIX = "# pyproject-sha256: "
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


@dataclass(frozen=True)
class Inputs:
    """What the locks are made from: pyproject.toml's dependency lists."""

    requires_python: str
    run: tuple[str, ...]
    dev: tuple[str, ...]

    @classmethod
    def read(cls, pyproject: Path = PYPROJECT) -> Inputs:
        project = tomllib.loads(pyproject.read_text())["project"]
        return cls(
            requires_python=project["requires-python"],
            run=tuple(project["dependencies"]),
            dev=tuple(project.get("optional-dependencies", {}).get("dev", ())),
        )

    def digest(self) -> str:
        text = json.dumps([self.requires_python, sorted(self.run), sorted(self.dev)], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def pins(lock: Path) -> dict[str, str]:
    """The exact versions a lock file pins, by canonical name."""
    found: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def _recorded_digest(lock: Path) -> str | None:
    for line in lock.read_text().splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line.removeprefix(DIGEST_PREFIX).strip()
    return None


def pip_problems(pip_input: Path = PIP_INPUT, pip_lock: Path = PIP_LOCK) -> list[str]:
    """Every way in which the installer's lock does not match requirements/pip.in."""
    if not pip_lock.exists():
        return [f"{pip_lock.name} is missing: run `make lock`"]
    locked = pins(pip_lock)
    found = []
    for line in pip_input.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            version = locked.get(canonicalize_name(requirement.name))
            if version is None or not requirement.specifier.contains(version):
                found.append(f"{pip_lock.name} does not pin {requirement} ({version}): run `make lock`")
    return found


def problems(inputs: Inputs, run_lock: Path = RUN_LOCK, dev_lock: Path = DEV_LOCK) -> list[str]:
    """Every way in which the locks do not match pyproject.toml (empty when they agree)."""
    found: list[str] = []
    for lock in (run_lock, dev_lock):
        if not lock.exists():
            found.append(f"{lock.name} is missing: run `make lock`")
            continue
        if _recorded_digest(lock) != inputs.digest():
            found.append(f"{lock.name} was not generated from this pyproject.toml: run `make lock`")
    if found:
        return found
    run_pins, dev_pins = pins(run_lock), pins(dev_lock)
    for lock, requirements, locked in ((run_lock, inputs.run, run_pins), (dev_lock, inputs.run + inputs.dev, dev_pins)):
        for text in requirements:
            requirement = Requirement(text)
            version = locked.get(canonicalize_name(requirement.name))
            if version is None:
                if requirement.marker is None or requirement.marker.evaluate():
                    found.append(f"{lock.name} does not pin {requirement.name}")
            elif not requirement.specifier.contains(version, prereleases=True):
                found.append(f"{lock.name} pins {requirement.name}=={version}, outside {requirement.specifier}")
    for name, version in run_pins.items():
        if dev_pins.get(name) != version:
            found.append(f"{dev_lock.name} has {name}=={dev_pins.get(name)}, {run_lock.name} has {version}")
    return found


def _compile(output: Path, extra: list[str], upgrade: list[str] | None, source: Path = PYPROJECT) -> None:
    command = [
        sys.executable, "-m", "uv", "pip", "compile", str(source.relative_to(ROOT)),
        "--universal", "--python-version", PYTHON_VERSION, "--generate-hashes", "--quiet",
        "--custom-compile-command", "make lock",
        "-o", str(output.relative_to(ROOT)), *extra,
    ]  # fmt: skip
    if upgrade is None:
        command.append("--upgrade")
    for name in upgrade or ():
        command += ["--upgrade-package", name]
    subprocess.run(command, cwd=ROOT, check=True)


def _stamp(lock: Path, digest: str) -> None:
    lines = [line for line in lock.read_text().splitlines() if not line.startswith(DIGEST_PREFIX)]
    lock.write_text("\n".join([DIGEST_PREFIX + digest, *lines]) + "\n")


def regenerate(upgrade: list[str] | None) -> None:
    """Writes both locks; `upgrade` names the packages to move to their newest release (None: all of them)."""
    RUN_LOCK.parent.mkdir(exist_ok=True)
    digest = Inputs.read().digest()
    _compile(RUN_LOCK, [], upgrade)
    _compile(DEV_LOCK, ["--extra", "dev", "-c", str(RUN_LOCK.relative_to(ROOT))], upgrade)
    for lock in (RUN_LOCK, DEV_LOCK):
        _stamp(lock, digest)
    _compile(PIP_LOCK, [], upgrade, PIP_INPUT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the locks match pyproject.toml")
    parser.add_argument("--upgrade-package", action="append", default=[], metavar="NAME")
    parser.add_argument("--upgrade", action="store_true", help="move every package to its newest allowed release")
    args = parser.parse_args()
    if not args.check:
        regenerate(None if args.upgrade else args.upgrade_package)
    found = problems(Inputs.read()) + pip_problems()
    for problem in found:
        sys.stderr.write(f"lock: {problem}\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
