"""The import rules of the packages (stated in the prm_models docstring), read from the source with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# preflight checks a whole run's inputs for the CLI and the experiments, PRM names included, so it sits
# with them above the core.
TOP_LAYERS = ("prm_fire/cli/", "prm_fire/experiments/", "prm_fire/evaluation/", "prm_fire/export/",
              "prm_fire/preflight.py")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import statement in ``path`` ([] names for `import x`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


def _sources() -> list[Path]:
    return sorted(p for pkg in ("prm_fire", "prm_models") for p in (REPO / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_core_never_imports_prm_models_and_nobody_imports_private_names(path: Path) -> None:
    relative = path.relative_to(REPO).as_posix()
    core = relative.startswith("prm_fire/") and not relative.startswith(TOP_LAYERS)
    for module, names in _imports(path):
        if core:
            assert not module.startswith("prm_models"), f"{relative}: the core of prm_fire imports {module}"
        if module.startswith(("prm_fire", "prm_models")):
            private = [n for n in names if n.startswith("_")]
            assert not private, f"{relative}: imports private names {private} from {module}"
            assert not any(part.startswith("_") and part != "__init__" for part in module.split(".")), relative


def test_the_evaluator_lives_with_the_evaluation_code() -> None:
    assert not (REPO / "prm_models" / "processbench.py").exists()
    assert (REPO / "prm_fire" / "evaluation" / "processbench.py").exists()
