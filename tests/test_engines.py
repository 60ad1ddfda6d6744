"""Engines and scorers are built in one place (prm_app.experiments.resources) for every entry point; a
scorer shares the policy's engine unless its options name another model."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from prm_app.cli import build_parser
from prm_app.cli import search as search_cli
from prm_app.experiments.resources import build_scorer

REPO = Path(__file__).resolve().parents[1]
POLICY, OTHER = "smollm2-135m", "qwen2.5-coder-0.5b"


@pytest.fixture(scope="module")
def built():
    """``engines`` of ``prm-fire search`` for the given extra arguments (the policy loads; a scorer with its
    own model does not load it until it scores)."""
    def get(*extra: str):
        args = build_parser().parse_args(["search", "--model", POLICY, "--budget", "10", *extra])
        _, _, _, options = search_cli.check(args)
        return search_cli.engines(args, options)

    return get


def test_search_builds_a_critic_on_the_model_its_option_names(built):
    generator, scorer = built("--prm", "critic", "--prm-option", f"model={OTHER}")
    assert generator.model_name == POLICY
    assert scorer.model_name == OTHER  # not the policy's engine: it builds its own on first use


def test_search_shares_the_policy_engine_with_a_critic_that_names_no_model_or_the_same(built):
    for extra in ((), ("--prm-option", f"model={POLICY}")):
        generator, scorer = built("--prm", "critic", *extra)
        assert scorer.generator is generator and scorer.model_name == POLICY


def test_an_expensive_scorer_inside_combined_follows_the_same_rule(built):
    generator, _ = built()
    own = build_scorer("combined", {"cheap": ["symbolic"], "expensive": "critic",
                                    "options": {"critic": {"model": OTHER}}}, policy=generator)
    shared = build_scorer("combined", {"cheap": ["symbolic"], "expensive": "critic"}, policy=generator)
    assert own.expensive.model_name == OTHER and shared.expensive.generator is generator


def _calls(path: Path, names: set[str]) -> list[str]:
    """Names in ``names`` called in ``path`` (plain or attribute calls)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in names:
                found.append(name)
    return found


def test_no_entry_point_builds_an_engine_or_a_scorer_itself():
    """The app and the experiment scripts call make_generator / make_prm only in resources.py."""
    sources = [*(REPO / "prm_app").rglob("*.py"), *(REPO / "experiments").glob("*.py")]
    assert len(sources) > 20
    builders = {"make_generator", "make_prm"}
    outside = {p.relative_to(REPO).as_posix(): calls for p in sources
               if p.name != "resources.py" and (calls := _calls(p, builders))}
    assert outside == {}
    assert set(_calls(REPO / "prm_app" / "experiments" / "resources.py", builders)) == builders
