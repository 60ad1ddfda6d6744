"""Stage 1 of Table 5: base responses whose first lines are verified correct.

Our reading of the paper's data set ("ensures the correctness of the initial sentences"), each part a
config field: sample one response per problem; keep it if its final answer is wrong
(``require_wrong_answer``); let the PRM locate the first incorrect step; keep it if there is one
(``require_first_error``) at step ``min_first_error_step`` (0-based; 3 = line 4) or later, so lines
1-3 are judged correct. The PRM-line prefix is then everything before the first error.

Problems go in waves of ``config.wave_size``: one generator call samples the wave's base responses,
and the PRM scores the wave's responses together (the rollout PRM batches each search round).

With ``data.source = "processbench"`` nothing is sampled: ProcessBench's solutions (written by other,
mostly larger models) are the base responses, their paragraphs the steps, and their human label is
kept beside the PRM's verdict (``label_index``, the oracle-line's cut).

Every problem tried is **one** line of ``attempts.jsonl``: kept or why not, and the kept item itself.
That line is the only record of the problem, so no kill can leave it counted twice or half-written;
``dataset.jsonl`` (the kept items alone) is rewritten from it after every wave, as a convenience
view. A rerun skips problems already tried.
"""

from __future__ import annotations

import os
import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from prm_app.experiments.config import DataSpec, ExperimentConfig
from prm_app.experiments.resources import Resources
from prm_fire.grader import Grade, grade
from prm_fire.journal import append_journal, read_journal
from prm_fire.problems import Problem, ProcessBenchItem, load_problems, load_processbench
from prm_fire.prompts import build_messages
from prm_fire.records import BranchRequest
from prm_fire.sampling import stream_seed
from prm_fire.steps import Step, split_steps


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
    step_reasons: list[list[str]] | None = None  # per step, the rules a checker fired (reference, symbolic)
    label_index: int | None = Field(default=None, description="The human-labelled first error (ProcessBench), "
                                                              "if the response came with one.")
    author: str | None = Field(default=None, description="The model that wrote a given response (ProcessBench's "
                                                         "generator); None: sampled from the run's policy.")


class Attempt(BaseModel):
    """One problem tried: whether its response entered the data set, why (not), and the kept item."""

    model_config = ConfigDict(frozen=True)

    problem_id: str
    kept: bool
    reason: str
    correct: bool
    first_error_index: int | None
    steps: int
    tokens: int
    prm_tokens: int | None = None  # tokens the PRM generated (0: not scored); None: not recorded / no generator
    seconds: float = Field(description="This problem's share of its wave's wall time.")
    item: DatasetItem | None = Field(default=None, description="The kept item (None if not kept; or a run from "
                                                               "before items were stored here: see dataset.jsonl).")


def base_seed(seed: int, item_id: str) -> int:
    """The seed of one problem's base response: its own stream (purpose ``"base"``), independent of the
    other problems, of run order and of every branch set grown from the response."""
    return stream_seed(seed, item_id, "base")


def solution_lines(problem: Problem) -> int:
    """Non-blank lines of the problem's reference solution (0 without one); GSM8K's '#### answer' line is
    not part of it (the loader moves it to ``answer``)."""
    return sum(bool(line.strip()) for line in (problem.solution or "").splitlines())


def given_solutions(spec: DataSpec) -> dict[str, ProcessBenchItem]:
    """ProcessBench's labelled-erroneous solutions of ``spec.path`` whose label is ``min_label`` or later,
    by problem id, each problem with the gold answer and worked solution of its test-file twin."""
    from prm_models.gold import find_reference

    assert spec.source == "processbench" and spec.reference_data is not None
    return {item.problem.id: item.model_copy(update={"problem": find_reference(item.problem, spec.reference_data)})
            for item in load_processbench(spec.path)
            if item.label >= max(spec.min_label or 0, 0)}


def select_problems(spec: DataSpec) -> list[Problem]:
    """The problems of ``spec.path`` at the chosen levels/subjects/solution length (or, for ProcessBench,
    those whose solution's label is ``min_label`` or later), shuffled by ``spec.seed``, cut to ``limit``."""
    if spec.source == "processbench":
        problems = [item.problem for item in given_solutions(spec).values()]
        if not problems:
            raise ValueError(f"{spec.path}: no solution has a labelled first error at paragraph index "
                             f">= {spec.min_label}")
        random.Random(spec.seed).shuffle(problems)
        return problems[: spec.limit]
    problems = [
        p for p in load_problems(spec.path)
        if p.answer is not None
        and (spec.levels is None or p.level in spec.levels)
        and (spec.subjects is None or p.subject in spec.subjects)
        and (spec.min_solution_lines is None or solution_lines(p) >= spec.min_solution_lines)
    ]
    if not problems:
        raise ValueError(f"{spec.path}: no problem with a gold answer matches levels={spec.levels} "
                         f"subjects={spec.subjects} min_solution_lines={spec.min_solution_lines}")
    random.Random(spec.seed).shuffle(problems)
    return problems[: spec.limit]


def _verdict(config: ExperimentConfig, verdict: Grade, steps: int, first_error: int | None,
             screened_at: int | None = None) -> tuple[bool, str]:
    f, correct = config.filter, verdict.correct
    needed = max([int(p[4:]) for p in config.insertion.points if p.startswith("line")]
                 + [2] * ("entropy" in config.insertion.points), default=0)  # entropy-line: a line 2 or later
    if f.require_wrong_answer and correct:
        return False, "final answer correct"
    if f.require_final_answer and verdict.predicted is None:
        return False, "no final answer"
    if steps < needed:
        return False, f"response has {steps} {config.step_mode}s, insertion points need {needed}"
    if screened_at is not None:  # the rollout PRM's screen: the error is located no further
        return False, f"first error at or before step {screened_at} (PRM screen)"
    if first_error is None:
        return (not f.require_first_error), "PRM found no incorrect step"
    if first_error < f.min_first_error_step:
        return False, f"first error at step {first_error} < {f.min_first_error_step}"
    return True, "kept"


def read_items(config: ExperimentConfig) -> list[DatasetItem]:
    """The kept items of a run, in the order they were tried, from its attempts journal.

    Runs made before attempts stored their items keep them in ``dataset.jsonl``; those are looked up
    there by problem id (once each, so a duplicated line there cannot count twice).
    """
    attempts = read_journal(config.run_dir / "attempts.jsonl", Attempt)
    legacy = [a.problem_id for a in attempts if a.kept and a.item is None]
    stored = {}
    if legacy:
        for item in read_journal(config.run_dir / "dataset.jsonl", DatasetItem):
            stored.setdefault(item.problem.id, item)
        missing = [pid for pid in legacy if pid not in stored]
        if missing:
            raise ValueError(f"{config.run_dir}/attempts.jsonl: kept problem {missing[0]!r} has no item "
                             f"in attempts.jsonl or dataset.jsonl")
    return [a.item or stored[a.problem_id] for a in attempts if a.kept]


def write_dataset_view(config: ExperimentConfig) -> list[DatasetItem]:
    """Rewrite ``dataset.jsonl`` from the attempts journal, atomically (write, fsync, rename), and return
    the kept items it holds; nothing is written before the first attempt."""
    if not (config.run_dir / "attempts.jsonl").exists():
        return []
    path = config.run_dir / "dataset.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    items = read_items(config)
    with open(tmp, "wb") as f:
        f.writelines(item.model_dump_json().encode() + b"\n" for item in items)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return items


def _score_all(scorer: Any, problems: list[Problem], steps: list[list[str]]) -> list[Any]:
    """The scorer's verdicts on many responses: together if it can (``score_many``), else one by one."""
    pairs = list(zip(problems, steps))
    if hasattr(scorer, "score_many"):
        return scorer.score_many(pairs)
    return [scorer.score(problem, texts) for problem, texts in pairs]


def sample_wave(config: ExperimentConfig, problems: list[Problem], resources: Resources) -> list[Attempt]:
    """Stage 1 for one wave: base responses in one generator call (or ProcessBench's given ones), the
    PRM on the wave's candidates together, one :class:`Attempt` line per problem (appended in problem
    order); then the call journal is emptied (:meth:`Resources.settle`)."""
    start = resources.clock()
    if config.data.source == "processbench":
        given = given_solutions(config.data)
        texts, tokens = ["\n\n".join(given[p.id].steps) for p in problems], [0] * len(problems)
        labels, authors = [given[p.id].label for p in problems], [given[p.id].generator for p in problems]
    else:
        generator = resources.generator
        samplings = [config.base_sampling.model_copy(update={"seed": base_seed(config.base_sampling.seed, p.id)})
                     for p in problems]
        requests = [BranchRequest(prompt_ids=generator.encode(build_messages(p), ""), n=1, sampling=s)
                    for p, s in zip(problems, samplings)]
        raws = [branches[0] for branches in generator.branch_many(requests)]
        texts, tokens = [raw.text for raw in raws], [len(raw.token_ids) for raw in raws]
        labels, authors = [None] * len(problems), [None] * len(problems)
    verdicts = [grade(text, p.answer) for p, text in zip(problems, texts)]
    steps = [split_steps(text, config.step_mode) for text in texts]
    if config.data.source == "processbench":  # a label indexes ProcessBench's own paragraphs
        for p, mine in zip(problems, steps):
            if len(mine) != len(given[p.id].steps):
                raise ValueError(f"{config.data.path}: solution {p.id!r} splits into {len(mine)} paragraphs, "
                                 f"ProcessBench lists {len(given[p.id].steps)} (a blank step?)")
    asked = [j for j, (v, st) in enumerate(zip(verdicts, steps))
             if st and not (config.filter.require_wrong_answer and v.correct)]
    scored = _score_all(resources.scorer, [problems[j] for j in asked], [[x.text for x in steps[j]] for j in asked]) \
        if asked else []
    scores = dict(zip(asked, (s.model_copy(update={"threshold": config.prm.threshold}) for s in scored)))
    share = round((resources.clock() - start) / len(problems), 2)
    attempts = []
    for j, problem in enumerate(problems):
        sc = scores.get(j)
        screened_at = sc.first_zero_index if getattr(sc, "screened", False) else None
        first_error = sc.first_error_index if sc is not None and screened_at is None else None
        kept, reason = (_verdict(config, verdicts[j], len(steps[j]), first_error, screened_at) if steps[j]
                        else (False, "empty response"))
        item = DatasetItem(problem=problem, response=texts[j], steps=steps[j], grade=verdicts[j],
                           prm=config.prm.name, step_scores=sc.scores, first_error_index=first_error,
                           step_reasons=getattr(sc, "reasons", None), label_index=labels[j], author=authors[j]) \
            if kept and sc is not None else None
        attempts.append(Attempt(
            problem_id=problem.id, kept=item is not None, reason=reason, correct=verdicts[j].correct,
            first_error_index=first_error, steps=len(steps[j]), tokens=tokens[j],
            prm_tokens=0 if sc is None else getattr(sc, "tokens_generated", None), seconds=share, item=item))
    for attempt in attempts:
        append_journal(config.run_dir / "attempts.jsonl", attempt)
    resources.settle()
    return attempts


def waves(items: list[Any], size: int) -> list[list[Any]]:
    """``items`` cut into consecutive waves of ``size``.

    >>> waves([1, 2, 3, 4, 5], 2)
    [[1, 2], [3, 4], [5]]
    """
    return [items[i : i + size] for i in range(0, len(items), size)]


def build_dataset(
    config: ExperimentConfig,
    *,
    problems: list[Problem] | None = None,
    resources: Resources | None = None,
    progress: bool = True,
) -> list[DatasetItem]:
    """Run stage 1 for ``config`` in waves (resuming), return every kept item of the run.

    ``problems`` defaults to the config's subset (:func:`select_problems`); ``resources`` (generator,
    scorer) are built from the config unless given, and only if a problem is left to try.
    """
    done = {a.problem_id for a in read_journal(config.run_dir / "attempts.jsonl", Attempt)}
    todo = [p for p in (select_problems(config.data) if problems is None else problems) if p.id not in done]
    resources = resources or Resources(config)
    with tqdm(total=len(todo), desc="base responses", unit="problem", disable=not progress) as bar:
        items = None
        for wave in waves(todo, config.wave_size):
            sample_wave(config, wave, resources)
            items = write_dataset_view(config)
            bar.update(len(wave))
    # With nothing to try, the view is still rewritten: a run may have been killed before its last rewrite.
    return items if items is not None else write_dataset_view(config)
