"""Stage 1 of Table 5: base responses whose first lines are verified correct.

Our reading of the paper's data set ("ensures the correctness of the initial sentences"), each part a
config field: sample one response per problem; keep it if its final answer is wrong
(``require_wrong_answer``); let the PRM locate the first incorrect step; keep it if there is one
(``require_first_error``) at step ``min_first_error_step`` (0-based; 3 = line 4) or later, so lines
1-3 are judged correct. The PRM-line prefix is then everything before the first error.

Every problem tried is one line of ``attempts.jsonl`` (kept or why not); kept ones also go to
``dataset.jsonl``. A rerun skips problems already tried.
"""

from __future__ import annotations

import random
import time
import zlib
from typing import Any

from pydantic import BaseModel, ConfigDict
from tqdm.auto import tqdm

from prm_fire.experiments.config import DataSpec, ExperimentConfig
from prm_fire.journal import append_journal, read_journal
from prm_fire.generators import Generator, make_generator
from prm_fire.grader import Grade, grade
from prm_fire.problems import Problem, load_problems
from prm_fire.prompts import build_messages
from prm_fire.sampling import branch_seed
from prm_fire.steps import Step, split_steps


class Attempt(BaseModel):
    """One problem tried: whether its response entered the data set, and why (not)."""

    model_config = ConfigDict(frozen=True)

    problem_id: str
    kept: bool
    reason: str
    correct: bool
    first_error_index: int | None
    steps: int
    tokens: int
    prm_tokens: int | None = None  # tokens the PRM generated (0: not scored); None: not recorded / no generator
    seconds: float


class DatasetItem(BaseModel):
    """A kept response: problem, response, its steps, grade, and the PRM's verdict on every step."""

    model_config = ConfigDict(frozen=True)

    problem: Problem
    response: str
    steps: list[Step]
    grade: Grade
    prm: str
    step_scores: list[float]
    first_error_index: int | None


def item_seed(seed: int, item_id: str) -> int:
    """The seed of one problem's sampling: independent of the other problems and of run order."""
    return branch_seed(seed, zlib.crc32(item_id.encode()))


def select_problems(spec: DataSpec) -> list[Problem]:
    """The problems of ``spec.path`` at the chosen levels/subjects, shuffled by ``spec.seed``, cut to ``limit``."""
    problems = [
        p for p in load_problems(spec.path)
        if p.answer is not None
        and (spec.levels is None or p.level in spec.levels)
        and (spec.subjects is None or p.subject in spec.subjects)
    ]
    if not problems:
        raise ValueError(f"{spec.path}: no problem with a gold answer matches levels={spec.levels} subjects={spec.subjects}")
    random.Random(spec.seed).shuffle(problems)
    return problems[: spec.limit]


def _verdict(config: ExperimentConfig, correct: bool, steps: int, first_error: int | None,
             screened_at: int | None = None) -> tuple[bool, str]:
    f = config.filter
    needed = max([int(p[4:]) for p in config.insertion.points if p.startswith("line")], default=0)
    if f.require_wrong_answer and correct:
        return False, "final answer correct"
    if steps < needed:
        return False, f"response has {steps} {config.step_mode}s, insertion points need {needed}"
    if screened_at is not None:  # the rollout PRM's screen: the error is located no further
        return False, f"first error at or before step {screened_at} (PRM screen)"
    if first_error is None:
        return (not f.require_first_error), "PRM found no incorrect step"
    if first_error < f.min_first_error_step:
        return False, f"first error at step {first_error} < {f.min_first_error_step}"
    return True, "kept"


def make_scorer(config: ExperimentConfig, generator: Generator) -> Any:
    """The config's PRM; a rollout PRM with the policy's own model shares the loaded ``generator``."""
    from prm_models import make_prm

    same_model = config.prm.options.get("model", config.model) == config.model
    return make_prm(config.prm.name, config.prm.options, **({"generator": generator} if same_model else {}))


def build_dataset(
    config: ExperimentConfig,
    *,
    problems: list[Problem] | None = None,
    generator: Generator | None = None,
    scorer: Any | None = None,
    progress: bool = True,
) -> list[DatasetItem]:
    """Run stage 1 for ``config`` (resuming), return every kept item.

    ``problems`` defaults to the config's subset (:func:`select_problems`). ``generator`` and
    ``scorer`` default to the config's backend/model and PRM; pass them to share loaded models.
    """
    run_dir = config.run_dir
    attempts_path, dataset_path = run_dir / "attempts.jsonl", run_dir / "dataset.jsonl"
    done = {a.problem_id for a in read_journal(attempts_path, Attempt)}
    todo = [p for p in (select_problems(config.data) if problems is None else problems) if p.id not in done]
    if todo:
        generator = generator or make_generator(config.backend, config.model, **config.backend_options)
        scorer = scorer or make_scorer(config, generator)
    for problem in tqdm(todo, desc="base responses", unit="problem", disable=not progress):
        start = time.perf_counter()
        sampling = config.base_sampling.model_copy(update={"seed": item_seed(config.base_sampling.seed, problem.id)})
        [raw] = generator.branch(build_messages(problem), "", 1, sampling)
        verdict = grade(raw.text, problem.answer)
        steps = split_steps(raw.text, config.step_mode)
        scores = None
        if steps and not (config.filter.require_wrong_answer and verdict.correct):
            scores = scorer.score(problem, [s.text for s in steps])
            scores = scores.model_copy(update={"threshold": config.prm.threshold})
        screened_at = scores.first_zero_index if getattr(scores, "screened", False) else None
        first_error = scores.first_error_index if scores and screened_at is None else None
        kept, reason = (_verdict(config, verdict.correct, len(steps), first_error, screened_at) if steps
                        else (False, "empty response"))
        if kept and scores is not None:
            append_journal(dataset_path, DatasetItem(
                problem=problem, response=raw.text, steps=steps, grade=verdict, prm=config.prm.name,
                step_scores=scores.scores, first_error_index=first_error))
        append_journal(attempts_path, Attempt(
            problem_id=problem.id, kept=kept, reason=reason, correct=verdict.correct, first_error_index=first_error,
            steps=len(steps), tokens=len(raw.token_ids), prm_tokens=0 if scores is None else getattr(scores, "tokens_generated", None),
            seconds=round(time.perf_counter() - start, 2)))
    return read_journal(dataset_path, DatasetItem)
