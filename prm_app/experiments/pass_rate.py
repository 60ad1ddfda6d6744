"""Before Table 5: how often does the policy solve problems of each MATH level?

The CPU run must pick problems the small model solves *sometimes*: too easy and few responses are
wrong, too hard and no branch ever reaches the answer, so pass@10 says nothing. This stage samples
``samples`` responses for ``per_level`` problems of each level with the config's base sampling,
grades them, and reports per level the pass@1 (mean fraction correct), the share of problems solved
at least once, and the share of responses the data set filter could keep (wrong, with a line after
the first ``filter.min_first_error_step`` lines) -- an upper bound on the stage-1 yield before the PRM's verdict.
Data without levels (GSM8K) is grouped by the length of the reference solution instead.

With ``samples`` >= 2 it also estimates the headroom of Table 5's 1st-line cell: the 1st-line cut
keeps nothing of the response, so regular branches there are fresh samples of the problem; over the
problems whose sample 0 (the stage-1 response) is wrong, the unbiased pass@k of samples 1.. is that
cell's expected value (k = min(10, samples - 1)).

Sample 0 of a problem uses the seed :func:`prm_app.experiments.dataset.base_seed` gives it, so it is
the very response stage 1 would sample for that problem. Results go to ``pass_rate.jsonl`` (one line
per problem, resumable) and ``pass_rate.md``/``pass_rate.json`` in the run folder.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from tqdm.auto import tqdm

from prm_fire.atomic import write_atomic
from prm_app.experiments.config import ExperimentConfig
from prm_app.experiments.dataset import base_seed, select_problems, solution_lines, waves
from prm_app.experiments.resources import Resources
from prm_fire.grader import grade
from prm_fire.journal import append_journal, read_journal
from prm_fire.metrics import Interval, mean_ci, pass_at_k
from prm_fire.prompts import build_messages
from prm_fire.records import BranchRequest
from prm_fire.steps import split_steps


class ProblemPassRate(BaseModel):
    """The graded samples of one problem."""

    model_config = ConfigDict(frozen=True)

    problem_id: str
    level: int | None
    subject: str | None
    correct: list[bool] = Field(description="Grade of each sample, in branch order.")
    answers: list[str | None] = Field(description="Final answer extracted from each sample (None: none stated).")
    lines: list[int] = Field(description="Non-blank lines of each sample.")
    solution_lines: int | None = Field(default=None, description="Non-blank lines of the reference solution.")
    tokens: int = Field(description="Tokens generated over all samples.")
    seconds: float


class LevelPassRate(BaseModel):
    """One level's summary."""

    model_config = ConfigDict(frozen=True)

    level: int | None
    group: str = Field(default="all", description="The level, or the reference-solution length for data without levels.")
    problems: int
    samples: int
    pass_at_1: Interval = Field(description="Mean over problems of the fraction of samples correct.")
    solved: float = Field(description="Share of problems with at least one correct sample.")
    keepable: float = Field(description="Share of samples that are wrong and have >= min_lines lines.")
    mean_tokens: float = Field(description="Mean tokens per sample.")
    line1_k: int | None = Field(default=None, description="k of ``line1_pass_at_k`` (None: fewer than 2 samples).")
    line1_pass_at_k: Interval | None = Field(
        default=None, description="Over problems whose sample 0 is wrong: pass@k of samples 1.. (the 1st-line cell).")


def _journal(config: ExperimentConfig):
    return config.run_dir / "pass_rate.jsonl"


def measure_pass_rate(
    config: ExperimentConfig,
    levels: list[int] | None,
    *,
    per_level: int = 10,
    samples: int = 4,
    resources: Resources | None = None,
    progress: bool = True,
) -> list[ProblemPassRate]:
    """Sample and grade ``samples`` responses for ``per_level`` problems of each level (resuming).

    Problems come from ``config.data`` (path, subjects, shuffle seed) with ``levels`` replaced level by
    level; ``levels=None`` takes ``per_level`` problems regardless of level (data without levels, such
    as GSM8K). Returns the records of the chosen problems, old and new.
    """
    if samples < 1 or per_level < 1:
        raise ValueError(f"pass rate: samples and per_level must be >= 1, got {samples} and {per_level}")
    chosen = [
        p for level in (levels or [None])
        for p in select_problems(config.data.model_copy(
            update={"levels": None if level is None else [level], "limit": per_level}))
    ]
    path = _journal(config)
    done = {r.problem_id: r for r in read_journal(path, ProblemPassRate)}
    todo = [p for p in chosen if p.id not in done]
    resources = resources or Resources(config)
    with tqdm(total=len(todo), desc="pass rate", unit="problem", disable=not progress) as bar:
        for wave in waves(todo, config.wave_size):  # one generator call per wave of problems
            start = time.perf_counter()
            generator = resources.generator
            requests = [BranchRequest(
                prompt_ids=generator.encode(build_messages(p), ""), n=samples,
                sampling=config.base_sampling.model_copy(update={"seed": base_seed(config.base_sampling.seed, p.id)}))
                for p in wave]
            answered = generator.branch_many(requests)
            share = round((time.perf_counter() - start) / len(wave), 2)
            for problem, branches in zip(wave, answered):
                grades = [grade(b.text, problem.answer) for b in branches]
                record = ProblemPassRate(
                    problem_id=problem.id, level=problem.level, subject=problem.subject,
                    correct=[g.correct for g in grades], answers=[g.predicted for g in grades],
                    lines=[len(split_steps(b.text, "line")) for b in branches],
                    solution_lines=solution_lines(problem),
                    tokens=sum(len(b.token_ids) for b in branches),
                    seconds=share,
                )
                append_journal(path, record)
                done[problem.id] = record
            resources.settle()
            bar.update(len(wave))
    return [done[p.id] for p in chosen]


def _group(record: ProblemPassRate) -> tuple[int, int, str]:
    """Sort key and title of a record's row: its level, else its reference solution's length."""
    if record.level is not None:
        return 0, record.level, str(record.level)
    if record.solution_lines is None:
        return 2, 0, "all"
    bucket = min(record.solution_lines, 7)
    return 1, bucket, f"{bucket}{'+' if bucket == 7 else ''} lines"


def summarize(records: list[ProblemPassRate], min_lines: int = 4) -> list[LevelPassRate]:
    """Per-level (or per solution length) summary of :func:`measure_pass_rate` records, then all together."""
    groups = sorted({_group(r) for r in records})
    rows = []
    for key in [*groups, None] if len(groups) > 1 else groups:
        mine = [r for r in records if key is None or _group(r) == key]
        flat = [(c, n) for r in mine for c, n in zip(r.correct, r.lines)]
        wrong_first = [r for r in mine if len(r.correct) >= 2 and not r.correct[0]]
        k = min(10, min((len(r.correct) - 1 for r in mine), default=0))
        rows.append(LevelPassRate(
            level=mine[0].level if key is not None and key[0] == 0 else None,
            group="all" if key is None else key[2],
            problems=len(mine),
            samples=len(flat),
            pass_at_1=mean_ci([sum(r.correct) / len(r.correct) for r in mine]),
            solved=sum(any(r.correct) for r in mine) / len(mine),
            keepable=sum(not c and n >= min_lines for c, n in flat) / len(flat),
            mean_tokens=sum(r.tokens for r in mine) / len(flat),
            line1_k=k or None,
            line1_pass_at_k=mean_ci([pass_at_k(len(r.correct) - 1, sum(r.correct[1:]), k) for r in wrong_first])
            if k and wrong_first else None,
        ))
    return rows


def render_pass_rate(config: ExperimentConfig, rows: list[LevelPassRate]) -> str:
    """A markdown table of the per-level (or per solution length) summary."""
    k = next((r.line1_k for r in rows if r.line1_k), None)
    headroom = f" | 1st-line pass@{k} % (sample 0 wrong) [95% CI] |" if k else " |"
    lines = [
        f"### {config.name}: pass rate of {config.model} on {config.data.path}",
        "",
        f"Base sampling: temperature {config.base_sampling.temperature}, "
        f"max {config.base_sampling.max_new_tokens} new tokens.",
        "",
        f"| group | problems | samples | pass@1 % [95% CI] | solved at least once % "
        f"| wrong with >= {config.filter.min_first_error_step + 1} lines % | tokens/sample{headroom}",
        "|---|---|---|---|---|---|---|" + ("---|" if k else ""),
    ]
    for r in rows:
        ci = r.pass_at_1
        row = (f"| {r.group} | {r.problems} | {r.samples} | {_pct(ci)} "
               f"| {100 * r.solved:.0f} | {100 * r.keepable:.0f} | {r.mean_tokens:.0f} |")
        if k:
            row += f" {_pct(r.line1_pass_at_k)} (n={r.line1_pass_at_k.n}) |" if r.line1_pass_at_k else " – |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def _pct(ci: Interval) -> str:
    return f"{100 * ci.mean:.1f} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def write_pass_rate(config: ExperimentConfig, records: list[ProblemPassRate]) -> list[LevelPassRate]:
    """Summarize and write ``pass_rate.md`` and ``pass_rate.json`` into the run folder."""
    rows = summarize(records, min_lines=config.filter.min_first_error_step + 1)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(config.run_dir / "pass_rate.md", render_pass_rate(config, rows))
    write_atomic(config.run_dir / "pass_rate.json", TypeAdapter(list[LevelPassRate]).dump_json(rows, indent=1))
    return rows
