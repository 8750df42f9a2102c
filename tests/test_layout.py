"""The package's layout follows the data's path: lower layers never import upper ones."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "semisup"


def imports_of(path: Path) -> set[str]:
    """Every ``semisup...`` module a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("semisup"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("semisup"))
    return found


def test_evaluation_never_imports_training():
    offenders = {path.name: sorted(m for m in imports_of(path) if m.startswith("semisup.train"))
                 for path in (PACKAGE / "evaluate").glob("*.py")}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_plots_and_sweep_do_not_import_each_other():
    plots, sweep = imports_of(PACKAGE / "evaluate" / "plots.py"), imports_of(PACKAGE / "evaluate" / "sweep.py")
    assert not ("semisup.evaluate.sweep" in plots and "semisup.evaluate.plots" in sweep)
    assert "semisup.evaluate.plots" not in sweep  # the sweep computes; plots draw it


def test_data_and_models_never_import_training_or_evaluation():
    for layer in ("data", "models", "objectives", "pretext"):
        for path in (PACKAGE / layer).glob("*.py"):
            upward = [m for m in imports_of(path) if m.startswith(("semisup.train", "semisup.evaluate", "semisup.cli"))]
            assert upward == [], (path, upward)
