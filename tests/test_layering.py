"""The import order of the packages (stated in the prm_models and prm_app docstrings), read from the source
with ast, lazy imports inside functions included: core ``prm_fire`` <- ``prm_models`` <- app ``prm_app``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("prm_fire", "prm_models", "prm_app")  # each may import only those before it


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
    return sorted(p for pkg in LAYERS for p in (REPO / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_go_one_way_and_nobody_imports_private_names(path: Path) -> None:
    relative = path.relative_to(REPO).as_posix()
    level = LAYERS.index(relative.split("/")[0])
    for module, names in _imports(path):
        top = module.split(".")[0]
        if top in LAYERS:
            assert LAYERS.index(top) <= level, f"{relative} ({LAYERS[level]}) imports {module} from a layer above"
            private = [n for n in names if n.startswith("_")]
            assert not private, f"{relative}: imports private names {private} from {module}"
            assert not any(part.startswith("_") and part != "__init__" for part in module.split(".")), relative


def test_the_check_sees_a_lazy_import_from_above(tmp_path: Path) -> None:
    """The walk finds imports inside functions, where the old loops were."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from prm_app.experiments.resources import Resources\n")
    assert ("prm_app.experiments.resources", ["Resources"]) in _imports(source)


def test_every_package_of_the_app_sits_in_the_app_layer() -> None:
    for name in ("cli", "experiments", "evaluation", "export"):
        assert not (REPO / "prm_fire" / name).exists() and (REPO / "prm_app" / name / "__init__.py").exists()
    assert not (REPO / "prm_fire" / "preflight.py").exists()
