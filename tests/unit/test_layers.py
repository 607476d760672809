"""Layers point one way: config (wiring) on top, services and the demo app in the middle,
the conveyor library at the bottom. Read from the source, so a lazy import counts too."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> top-level packages of this repository it must never import
FORBIDDEN = {
    "conveyor": {"config", "services", "demo", "bench", "tests"},
    "services": {"config", "demo", "bench", "tests"},
    "demo": {"config", "bench", "tests"},
}


def imported_packages(path):
    """(line, top-level package) of every import in a Python file, wherever it sits."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module.split(".")[0]


def violations(package):
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, imported in imported_packages(path):
            if imported in FORBIDDEN[package]:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_never_imports_the_layers_above_it(package):
    # Given every Python file of the package; When its imports are read
    # Then none names a package above it
    assert violations(package) == []


def test_the_check_sees_an_import_inside_a_function(tmp_path, monkeypatch):
    # Given a library module that imports the wiring package inside a function
    (tmp_path / "conveyor").mkdir()
    (tmp_path / "conveyor" / "sneaky.py").write_text("def f():\n    from config import api\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    # When the layers are checked; Then it is reported
    assert violations("conveyor") == ["conveyor/sneaky.py:2 imports config"]
