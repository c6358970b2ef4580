"""The package layout: services are services, the launcher and the edge are built on them, never the reverse.

Imports are read from the source (ast), so an import inside a function or
behind TYPE_CHECKING counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.suite import ROOT

# Packages that run or front the services; a service importing them would make `services/` depend on them.
OUTSIDE_SERVICES = ("edge", "launcher")


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports (`from x import y` gives `x`; relative imports stay inside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def top_level(module: str) -> str:
    return module.partition(".")[0]


def test_services_import_neither_the_edge_nor_the_launcher() -> None:
    offenders = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / "services").rglob("*.py"))
        for module in imported_modules(path)
        if top_level(module) in OUTSIDE_SERVICES
    }
    assert not offenders, sorted(offenders)


def test_the_launcher_is_a_package_of_its_own_and_services_has_no_entry_point() -> None:
    assert (ROOT / "launcher" / "__main__.py").is_file()
    assert not (ROOT / "services" / "__main__.py").exists(), "the suite starts with `python -m launcher`"
    assert not (ROOT / "services" / "launcher.py").exists()


def test_the_import_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import edge.render\nfrom launcher.config import read_config\nfrom . import sibling\n"
        "def later():\n    import launcher\n",
        encoding="utf-8",
    )
    assert imported_modules(sample) == {"edge.render", "launcher.config", "launcher"}
