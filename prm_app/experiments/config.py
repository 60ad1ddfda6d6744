"""Experiment configuration: one TOML file describes a whole Table 5 run.

Shipped configs (``prm_app/experiments/configs/``): ``cpu-small`` (embedded Qwen2.5-Coder model, rollout
PRM, a subset that fits a 2-core CPU) and ``paper`` (Qwen2-7B-Instruct on vLLM, Qwen2.5-Math-PRM-7B,
MATH train: the real reproduction, for a GPU machine). ``--config`` takes a shipped name or a path.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prm_fire.prefixes import check_point
from prm_fire.sampling import FireConfig, Method, SamplingConfig
from prm_fire.scale.executor import ExecutorSpec
from prm_fire.steps import StepMode


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataSpec(_Strict):
    """Which problems get a base response, or (``source = "processbench"``) which given solutions are cut."""

    source: Literal["problems", "processbench"] = Field(
        default="problems",
        description="'problems': a problem file; the policy samples each base response. 'processbench': "
                    "ProcessBench's labelled solutions (written by other models) are the base responses, "
                    "their paragraphs the steps and their label the oracle-line's first error.")
    path: str = Field(description="Data file (MATH JSONL, ProcessBench JSON ...); relative paths are from the "
                                  "working directory.")
    levels: list[int] | None = Field(default=None, description="Keep these MATH levels; None keeps all.")
    subjects: list[str] | None = Field(default=None, description="Keep these subjects (MATH 'type'); None keeps all.")
    min_solution_lines: int | None = Field(
        default=None, ge=1,
        description="Keep problems whose reference solution has at least this many non-blank lines (a "
                    "difficulty feature for data without levels, such as GSM8K); None keeps all.")
    min_label: int | None = Field(
        default=None, ge=0,
        description="ProcessBench: keep solutions whose labelled first error is at this 0-based paragraph or "
                    "later (3 = paragraph 4); None keeps every labelled-erroneous solution.")
    reference_data: str | None = Field(
        default=None,
        description="ProcessBench: the folder holding gsm8k/test.jsonl and math/test.jsonl, where each "
                    "problem's gold answer and worked solution are looked up.")
    limit: int | None = Field(default=None, ge=1, description="At most this many problems (after shuffling).")
    seed: int = Field(default=0, description="Shuffle seed for choosing the subset.")

    @model_validator(mode="after")
    def _fields_of_the_source(self) -> DataSpec:
        if self.source == "processbench":
            if self.reference_data is None:
                raise ValueError("source 'processbench' needs reference_data (the folder with gsm8k/test.jsonl "
                                 "and math/test.jsonl) for the problems' gold answers")
            given = [f for f in ("levels", "subjects", "min_solution_lines") if getattr(self, f) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only for source 'problems' (use min_label with ProcessBench)")
        else:
            given = [f for f in ("min_label", "reference_data") if getattr(self, f) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only for source 'processbench'")
        return self


class PRMSpec(_Strict):
    """The process reward model that locates the first incorrect step."""

    name: str = Field(description="Registered name in prm_models.PRMS (rollout, symbolic, qwen-prm, ...).")
    options: dict[str, Any] = Field(default_factory=dict, description="The scorer's config fields.")
    threshold: float = Field(default=0.5, ge=0, le=1, description="A step scored below it is incorrect.")


class FilterSpec(_Strict):
    """Which base responses enter the data set (the paper: initial sentences verified correct)."""

    require_wrong_answer: bool = Field(default=True, description="Keep only responses with a wrong final answer.")
    min_first_error_step: int = Field(
        default=3, ge=0, description="Keep responses whose first error is at this 0-based step or later (3 = line 4)."
    )
    require_first_error: bool = Field(default=True, description="Drop responses where the PRM finds no error.")
    require_final_answer: bool = Field(
        default=False,
        description="Drop responses that state no final answer (e.g. cut at base_sampling.max_new_tokens): "
                    "their 'wrong answer' is a truncation, not a mistake.")


class InsertionSpec(_Strict):
    """The branching of every kept response."""

    points: list[str] = Field(default=["line1", "line2", "line3", "prm"])
    methods: list[Method] = Field(default=["regular", "fire"])
    n: int = Field(default=10, ge=1, description="Branches per (item, point, method).")
    ks: list[int] = Field(default=[1, 10], description="pass@k reported for these k (1 <= k <= n; checked).")
    items: int | None = Field(
        default=None, ge=2,
        description="The table's items: the first this many kept items in attempt order (the size a power plan "
                    "fixed before the run); None: every branched item. Items past it stay in the journals.")
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(method="regular"),
                                     description="Regular settings, shared by both methods.")
    fire: FireConfig = Field(default_factory=FireConfig, description="The hot first token of method 'fire'.")

    def sampling_for(self, method: Method, seed: int) -> SamplingConfig:
        """The sampling config of one branch set: regular settings, FIRE's hot token if asked, ``seed``."""
        fire = self.fire if method == "fire" else None
        return self.sampling.model_copy(update={"method": method, "fire": fire, "seed": seed})

    @field_validator("points")
    @classmethod
    def _known_points(cls, points: list[str]) -> list[str]:
        return [check_point(p) for p in points]

    @model_validator(mode="after")
    def _ks_within_n(self) -> InsertionSpec:
        bad = [k for k in self.ks if not 1 <= k <= self.n]
        if bad:
            raise ValueError(f"pass@k needs 1 <= k <= n = {self.n}; ks has {', '.join(map(str, bad))}")
        return self


class ExperimentConfig(_Strict):
    """A whole Table 5 run: data, model, base responses, PRM, filter, insertion."""

    name: str = Field(description="Run name; outputs go to <out_dir>/<name>/.")
    out_dir: str = "results"
    model: str = Field(description="Policy: embedded key, HF folder or hub id.")
    backend: str = Field(default="hf", description="Generator backend registered in prm_fire.generators.")
    backend_options: dict[str, Any] = Field(default_factory=dict)
    step_mode: StepMode = "line"
    data: DataSpec
    base_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(method="regular", temperature=0.7, max_new_tokens=512),
        description="How the one base response per problem is sampled.",
    )
    prm: PRMSpec
    filter: FilterSpec = Field(default_factory=FilterSpec)
    insertion: InsertionSpec = Field(default_factory=InsertionSpec)
    wave_size: int = Field(
        default=8, ge=1,
        description="Problems per wave: one generator call samples a wave's base responses, the PRM scores them "
                    "together, one call grows every branch set of its kept items. Results do not depend on it.",
    )
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec,
                                   description="Where the chain's engines run: 'local' or 'ray' (prm_fire.scale).")

    @model_validator(mode="after")
    def _prm_point_needs_an_error(self) -> ExperimentConfig:
        if "prm" in self.insertion.points and not self.filter.require_first_error:
            raise ValueError("insertion point 'prm' cuts at the PRM's first error, so filter.require_first_error "
                             "must be true (or drop 'prm' from insertion.points)")
        if "oracle" in self.insertion.points and self.data.source != "processbench":
            raise ValueError("insertion point 'oracle' cuts at a labelled first error, so data.source must be "
                             "'processbench' (or drop 'oracle' from insertion.points)")
        if self.data.source == "processbench" and self.step_mode != "paragraph":
            raise ValueError("data.source 'processbench' gives solutions as paragraphs, so step_mode must be "
                             "'paragraph'")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


def shipped_configs() -> list[str]:
    """Names of the configs that ship with the package."""
    folder = resources.files("prm_app.experiments") / "configs"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_config(name_or_path: str | Path, **overrides: Any) -> ExperimentConfig:
    """Read a config by shipped name (``cpu-small``) or TOML path; top-level ``overrides`` replace fields.

    Errors name the file and the field.
    """
    path = Path(name_or_path)
    if not path.suffix:
        if str(name_or_path) not in shipped_configs():
            raise ValueError(f"unknown config {str(name_or_path)!r}: shipped ones are {', '.join(shipped_configs())}, "
                             "or give a .toml path")
        text = (resources.files("prm_app.experiments") / "configs" / f"{name_or_path}.toml").read_text()
    else:
        text = path.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"config {name_or_path}: not valid TOML: {err}") from None
    raw.update(overrides)
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ValueError(f"config {name_or_path}: {problems}") from None
