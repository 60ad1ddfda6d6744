"""The registries: lazy "module:attr" entries, imported and checked on first use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prm_fire.generators import GENERATORS
from prm_fire.generators.base import Generator
from prm_fire.registry import Registry, RegistryError, implements
from prm_models import PRMS, PRMScorer

REPO = Path(__file__).resolve().parents[1]


def test_importing_the_registries_imports_no_plug_in() -> None:
    # A fresh interpreter: this one has imported plug-ins already.
    code = (
        "import json, sys\n"
        "import prm_models, prm_fire.generators\n"
        "regs = [prm_models.PRMS, prm_fire.generators.GENERATORS]\n"
        "targets = {n: r.target(n) for r in regs for n in r.names()}\n"
        "print(json.dumps({'targets': targets, 'loaded': sorted(sys.modules)}))\n"
    )
    out = json.loads(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                                    check=True).stdout)
    modules = {target.split(":")[0] for target in out["targets"].values()}
    assert {"prm_models.rollout", "prm_models.symbolic", "prm_fire.generators.hf"} <= modules
    assert not modules & set(out["loaded"]), "importing the registries imported a plug-in"
    assert "torch" not in out["loaded"]


def test_every_entry_resolves_to_a_class_that_passes_its_check() -> None:
    for name in PRMS.names():
        cls = PRMS.get(name)
        assert callable(cls.score) and hasattr(cls.Config, "model_validate"), name
        assert f"{cls.__module__}:{cls.__qualname__}" == PRMS.target(name)
    for name in GENERATORS.names():
        cls = GENERATORS.get(name)
        assert all(callable(getattr(cls, m)) for m in ("encode", "branch", "branch_many")), name


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown PRM scorer 'nope'; known: combined, critic, label, "):
        PRMS.get("nope")
    with pytest.raises(KeyError, match="unknown generator backend 'gpu'; known: hf, llamacpp, vllm"):
        GENERATORS.get("gpu")
    with pytest.raises(KeyError, match="known: hf, llamacpp, vllm"):
        GENERATORS.target("gpu")


@pytest.mark.parametrize("target, message", [
    ("prm_models.no_such_module:X", "PRM scorer 'bad': cannot import 'prm_models.no_such_module' for "
                                    "'prm_models.no_such_module:X': No module named 'prm_models.no_such_module'"),
    ("prm_models.label:NoSuchClass", "PRM scorer 'bad': module 'prm_models.label' has no 'NoSuchClass'"),
    ("prm_models.label:MissingLabelError", "PRM scorer 'bad': prm_models.label:MissingLabelError lacks "
                                           "PRMScorer's method 'score'"),
    ("prm_models.label:LabelConfig", "PRM scorer 'bad': prm_models.label:LabelConfig lacks PRMScorer's method"),
    ("prm_models.gold:find_reference", "PRM scorer 'bad': prm_models.gold:find_reference is not a class"),
])
def test_a_bad_entry_fails_when_resolved_naming_it(target: str, message: str) -> None:
    registry: Registry[type] = Registry("PRM scorer", check=implements(PRMScorer, attributes=("Config",)),
                                        lazy={"bad": target, "label": "prm_models.label:LabelPRM"})
    assert registry.names() == ["bad", "label"]  # listing resolves nothing, so a bad entry goes unnoticed
    with pytest.raises(RegistryError) as err:
        registry.get("bad")
    assert str(err.value).startswith(message)
    with pytest.raises(RegistryError):  # not cached: every use fails the same way
        registry.get("bad")
    assert registry.get("label").name == "label"


def test_a_scorer_without_a_config_and_a_non_generator_are_refused() -> None:
    scorers: Registry[type] = Registry("PRM scorer", check=implements(PRMScorer, attributes=("Config",)))

    class NoConfig:
        name = "x"

        def score(self, problem, steps):
            return None

    with pytest.raises(RegistryError, match="'x': .*NoConfig lacks the class attribute 'Config'"):
        scorers.register("x")(NoConfig)
    assert scorers.names() == []
    backends: Registry[type] = Registry("generator backend", check=implements(Generator),
                                        lazy={"grader": "prm_fire.grader:Grade"})
    with pytest.raises(RegistryError, match="'grader': prm_fire.grader:Grade lacks Generator's method 'encode'"):
        backends.get("grader")


def test_a_malformed_target_or_a_second_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="backend 'x': lazy entry 'prm_models.label' is not 'module:attr'"):
        Registry("backend", lazy={"x": "prm_models.label"})
    registry: Registry[type] = Registry("backend", lazy={"x": "fractions:Fraction"})
    with pytest.raises(ValueError, match="backend 'x' is registered twice"):
        registry.register("x")(int)
