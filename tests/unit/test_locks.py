"""The installs are locked: pyproject.toml and the locks agree, and `make` installs from the locks only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools import lock

ROOT = Path(__file__).resolve().parents[2]
NODE_TOOLS = ROOT / "tools" / "node"


def test_the_committed_locks_match_pyproject() -> None:
    assert lock.problems(lock.Inputs.read()) == []
    assert lock.pip_problems() == []


def test_an_installer_lock_that_does_not_satisfy_pip_in_is_caught(tmp_path: Path) -> None:
    pip_lock = tmp_path / "pip.txt"
    pip_lock.write_text(re.sub(r"^setuptools==\S+", "setuptools==1.0", lock.PIP_LOCK.read_text(), flags=re.MULTILINE))
    assert lock.pip_problems(lock.PIP_INPUT, pip_lock) == ["pip.txt does not pin setuptools>=75 (1.0): run `make lock`"]


def test_every_locked_package_carries_hashes() -> None:
    for path in (lock.RUN_LOCK, lock.DEV_LOCK, lock.PIP_LOCK):
        entries = re.split(r"\n(?=\S)", path.read_text())
        pinned = [entry for entry in entries if "==" in entry.split("\n", 1)[0] and not entry.startswith("#")]
        assert pinned, path
        unhashed = [entry.split()[0] for entry in pinned if "--hash=sha256:" not in entry]
        assert unhashed == [], f"{path.name}: no hashes for {unhashed}"


@pytest.fixture
def pyproject(tmp_path: Path) -> Path:
    copy = tmp_path / "pyproject.toml"
    copy.write_text(lock.PYPROJECT.read_text())
    return copy


def test_a_pin_changed_without_make_lock_is_caught(pyproject: Path) -> None:
    text = pyproject.read_text()
    assert '"orjson>=3.10",' in text
    pyproject.write_text(text.replace('"orjson>=3.10",', '"orjson>=3.10,<3.10.1",'))

    found = lock.problems(lock.Inputs.read(pyproject))

    assert found == [
        "run.txt was not generated from this pyproject.toml: run `make lock`",
        "dev.txt was not generated from this pyproject.toml: run `make lock`",
    ]


def test_a_dependency_the_lock_does_not_pin_or_pins_outside_its_range_is_named(tmp_path: Path) -> None:
    inputs = lock.Inputs.read()
    run_lock, dev_lock = tmp_path / "run.txt", tmp_path / "dev.txt"
    run_text = lock.RUN_LOCK.read_text()
    orjson = re.search(r"^orjson==\S+", run_text, re.MULTILINE)
    assert orjson is not None
    run_lock.write_text(
        re.sub(r"^regex==", "not-regex==", run_text, flags=re.MULTILINE).replace(orjson[0], "orjson==3.9.0")
    )
    dev_lock.write_text(lock.DEV_LOCK.read_text())

    found = lock.problems(inputs, run_lock, dev_lock)

    assert "run.txt does not pin regex" in found
    assert "run.txt pins orjson==3.9.0, outside >=3.10" in found
    assert any(problem.startswith("dev.txt has orjson==") for problem in found)


def test_make_installs_python_packages_from_the_locks_only() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PIP_INSTALL := \$\(PY\) -m pip install --quiet --require-hashes$", makefile, re.MULTILINE)
    installs = re.findall(r"^\t.*\bpip install\b.*$|^\t\$\(PIP_INSTALL\).*$", makefile, re.MULTILINE)
    assert installs == [
        "\t$(PIP_INSTALL) -r requirements/pip.txt",
        "\t$(PIP_INSTALL) --no-build-isolation -r requirements/run.txt",
        "\t$(PIP_INSTALL) -r requirements/pip.txt",
        "\t$(PIP_INSTALL) --no-build-isolation -r requirements/dev.txt",
    ]
    assert "export PIP_CONFIG_FILE := /dev/null" in makefile  # no machine-wide find-links or constraints


def test_node_tools_are_pinned_exactly_and_installed_with_npm_ci() -> None:
    package = json.loads((NODE_TOOLS / "package.json").read_text())
    locked = json.loads((NODE_TOOLS / "package-lock.json").read_text())["packages"]
    for name, version in package["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} must be an exact version, not {version}"
        entry = locked[f"node_modules/{name}"]
        assert entry["version"] == version
    unchecked = [path for path, entry in locked.items() if path and "integrity" not in entry]
    assert unchecked == []
    makefile = (ROOT / "Makefile").read_text()
    assert "cd $(NODE_TOOLS) && npm ci " in makefile
    assert "npm install" not in makefile and "npm pack" not in makefile
