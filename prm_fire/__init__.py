"""prm-fire: process-reward-guided mid-sequence FIRE sampling.

Pipeline, one module each: :mod:`~prm_fire.problems` (data) -> :mod:`~prm_fire.steps` ->
:mod:`~prm_fire.prefixes` -> :mod:`~prm_fire.sampling` + :mod:`~prm_fire.generators` ->
:mod:`~prm_fire.grader` -> :mod:`~prm_fire.records` -> :mod:`~prm_fire.branching` (the API) -> :mod:`~prm_fire.tree` ->
:mod:`~prm_fire.metrics`. This is the core: PRM scorers live in ``prm_models`` above it, and the
command line and experiments in ``prm_app`` above both.
"""

from typing import Any

from prm_fire.branching import BranchJob, branch, branch_many, grade_branch
from prm_fire.grader import Grade, extract_answer, grade
from prm_fire.metrics import effective_answers, mean_ci, pass_at_k
from prm_fire.prefixes import Prefix, PrefixError, build_prefix
from prm_fire.problems import DataError, Problem, find_problem, load_builtin, load_hub, load_problems
from prm_fire.prompts import build_messages
from prm_fire.records import BranchRequest, BranchSet, GradedBranch, Message
from prm_fire.sampling import FireConfig, SamplingConfig
from prm_fire.steps import Step, split_steps
from prm_fire.tree import add_branch_set, add_response, load_tree, new_tree, save_tree, summarize


def __getattr__(name: str) -> Any:
    """``make_generator`` and ``Generator`` load the backend registry on first use, so that reading or
    viewing a tree (``import prm_fire``) does not import the generators."""
    if name in ("make_generator", "Generator", "GENERATORS"):
        import prm_fire.generators as generators

        return getattr(generators, name)
    raise AttributeError(f"module 'prm_fire' has no attribute {name!r}")


__all__ = [
    "BranchJob", "BranchRequest", "BranchSet", "branch_many", "DataError", "FireConfig", "Generator", "Grade", "GradedBranch", "Message", "Prefix",
    "PrefixError", "Problem", "SamplingConfig", "Step", "add_branch_set", "add_response", "branch",
    "build_messages", "build_prefix", "effective_answers", "extract_answer", "find_problem", "grade",
    "grade_branch", "load_builtin", "load_hub", "load_problems", "load_tree", "make_generator", "mean_ci",
    "new_tree", "pass_at_k", "save_tree", "split_steps", "summarize",
]
