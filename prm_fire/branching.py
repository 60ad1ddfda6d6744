"""The Python API's core: branch a problem from a prefix and grade every branch.

>>> from prm_fire import branch, build_prefix, load_builtin, SamplingConfig, make_generator
>>> problem = load_builtin()[0]
>>> prefix = build_prefix(problem.solution, "line2", problem_id=problem.id)
>>> generator = make_generator("hf", "smollm2-135m")
>>> result = branch(problem, prefix, n=4, sampling=SamplingConfig(max_new_tokens=8), generator=generator)
>>> result.n, result.sampling.method, result.prefix.text == problem.solution.splitlines(True)[0]
(4, 'fire', True)
>>> all(b.grade.gold == "8" for b in result.branches), 0.0 <= result.pass_at(4) <= 1.0
(True, True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prm_fire.grader import extract_answer, grade
from prm_fire.limits import fits_context
from prm_fire.prefixes import Prefix
from prm_fire.problems import Problem
from prm_fire.prompts import build_messages
from prm_fire.records import Branch, BranchRequest, BranchSet, GradedBranch, Message
from prm_fire.sampling import SamplingConfig

if TYPE_CHECKING:  # pragma: no cover
    from prm_fire.generators.base import Generator

__all__ = ["Branch", "BranchJob", "BranchSet", "GradedBranch", "as_prefix", "branch", "branch_many", "grade_branch",
           "job_fits"]


def as_prefix(prefix: Prefix | str) -> Prefix:
    """A :class:`Prefix` from a Prefix or from raw text (recorded as insertion point 'custom')."""
    if isinstance(prefix, Prefix):
        return prefix
    return Prefix(point="custom", text=prefix, kept_steps=0)


def grade_branch(problem: Problem, prefix: Prefix, raw: Branch, *, timeout: float = 5.0) -> GradedBranch:
    """Attach the final answer and grade to one branch; the graded text is prefix + branch."""
    full = prefix.text + raw.text
    verdict = grade(full, problem.answer, timeout=timeout) if problem.answer is not None else None
    answer = verdict.predicted if verdict is not None else extract_answer(full)
    return GradedBranch(**raw.model_dump(), answer=answer, grade=verdict)


class BranchJob(BaseModel):
    """One branch set to grow: ``problem`` continued from ``prefix`` into ``n`` branches with ``sampling``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    problem: Problem
    prefix: Prefix
    n: int = Field(default=10, ge=1)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    messages: list[Message] | None = Field(
        default=None, description="Chat messages; default: the step-by-step prompt of build_messages."
    )

    @field_validator("prefix", mode="before")
    @classmethod
    def _text_prefix(cls, value: Prefix | str) -> Prefix:
        return as_prefix(value) if isinstance(value, str) else value


def _prompt_ids(job: BranchJob, generator: Generator) -> list[int]:
    return generator.encode(job.messages or build_messages(job.problem), job.prefix.text)


def job_fits(job: BranchJob, generator: Generator) -> bool:
    """Whether the job's prompt + prefix + ``max_new_tokens`` fit ``generator``'s context (True if unknown);
    :func:`branch_many` refuses a batch holding a job that does not."""
    if generator.shape is None:
        return True
    return fits_context(generator.shape, len(_prompt_ids(job, generator)), job.sampling.max_new_tokens)


def branch_many(jobs: list[BranchJob], *, generator: Generator) -> list[BranchSet]:
    """Grow and grade every job's branch set, all sent to ``generator`` in one call.

    Job j's set is the one :func:`branch` returns for it alone (branch seeds derive from each job's
    ``sampling.seed`` and the branch index), but the engine sees every job's sequences at once.
    """
    requests = [
        BranchRequest(prompt_ids=_prompt_ids(job, generator), n=job.n, sampling=job.sampling)
        for job in jobs
    ]
    return [
        BranchSet(
            problem_id=job.problem.id,
            model=generator.model_name,
            prefix=job.prefix,
            sampling=job.sampling,
            branches=[grade_branch(job.problem, job.prefix, b) for b in raw],
        )
        for job, raw in zip(jobs, generator.branch_many(requests), strict=True)
    ]


def branch(
    problem: Problem,
    prefix: Prefix | str,
    *,
    n: int = 10,
    sampling: SamplingConfig | None = None,
    generator: Generator,
    messages: list[Message] | None = None,
) -> BranchSet:
    """Continue ``problem``'s response from ``prefix`` into ``n`` branches and grade each one.

    ``sampling`` defaults to FIRE with its default settings; ``messages`` default to the
    step-by-step prompt of :func:`prm_fire.prompts.build_messages`. To grow many sets in one engine
    call, use :func:`branch_many`.
    """
    job = BranchJob(problem=problem, prefix=prefix, n=n, sampling=sampling or SamplingConfig(),
                    messages=messages)
    return branch_many([job], generator=generator)[0]
