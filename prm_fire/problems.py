"""Problems: one record for MATH, MATH-500, GSM8K and ProcessBench items, and their loaders.

Every data set goes through one converter per format (``math``, ``math500``, ``gsm8k``,
``processbench``, ``builtin``), whether its records come from a local file (:func:`load_problems`,
:func:`load_processbench`) or from the HuggingFace hub (:func:`load_hub`). A record that does not fit
its format raises :class:`DataError` naming the file, the line and what is wrong; nothing is skipped.

Local files are JSON Lines (one object a line) or one JSON list of objects (ProcessBench's layout).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)


class Problem(BaseModel):
    """One math problem, whatever data set it came from.

    ``id`` is unique within its source (MATH's ``unique_id``, ``gsm8k/test/17`` for GSM8K's 18th line).
    ``answer`` is the gold final answer as a string (``None`` where the source has none, as in
    ProcessBench). ``answer_format`` tells the grader how the gold answer is written.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, description="Unique id within the source.")
    question: str = Field(min_length=1, description="The problem statement shown to the model.")
    answer: str | None = Field(default=None, description="Gold final answer, or None if unknown.")
    source: str = Field(description="Data set name: math, math500, gsm8k, processbench, builtin, hub:<name>.")
    level: int | None = Field(default=None, description="Difficulty level (MATH 1-5) where known.")
    subject: str | None = Field(default=None, description="Subject / type (MATH) where known.")
    solution: str | None = Field(default=None, description="Reference solution text where the source has one.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Any other fields of the source record.")
    origin: str | None = Field(
        default=None,
        description="Where the record was loaded from: a file path or 'hub:<name>[/<config>] <split>'.",
    )


class ProcessBenchItem(BaseModel):
    """One ProcessBench item: a problem, a model's step-by-step solution and the step-level label."""

    model_config = ConfigDict(frozen=True)

    problem: Problem = Field(description="The problem (answer None: ProcessBench carries no gold answer).")
    steps: list[str] = Field(min_length=1, description="The solution, split into steps.")
    label: int = Field(ge=-1, description="Index of the earliest wrong step, -1 if every step is right.")
    final_answer_correct: bool = Field(description="Whether the solution's final answer is right.")
    generator: str = Field(min_length=1, description="The model that wrote the solution.")

    @model_validator(mode="after")
    def _label_in_range(self) -> ProcessBenchItem:
        if self.label >= len(self.steps):
            raise ValueError(f"label {self.label} is past the last step (there are {len(self.steps)} steps)")
        return self


class DataError(ValueError):
    """A data file or hub record that cannot be read as the expected format."""


class ProblemNotFoundError(KeyError):
    """No problem with the requested id (a KeyError whose message reads cleanly)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


Format = Literal["math", "math500", "gsm8k", "processbench", "builtin"]
FORMATS: tuple[str, ...] = get_args(Format)

BUILTIN_RESOURCE = "builtin_problems.jsonl"


# --- raw record schemas (strict: a number where text belongs is an error, not converted) ---------


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


Text = Annotated[str, AfterValidator(_not_blank)]


class _Record(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class _MathRecord(_Record):
    unique_id: Text
    problem: Text
    level: str
    type: Text
    solution: Text
    answer: str


class _Math500Record(_Record):
    unique_id: Text
    problem: Text
    level: int
    subject: Text
    solution: Text
    answer: str


class _Gsm8kRecord(_Record):
    question: Text
    answer: Text


class _ProcessBenchRecord(_Record):
    id: Text
    generator: Text
    problem: Text
    steps: list[Text]
    final_answer_correct: bool
    label: int


class _BuiltinRecord(Problem):
    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    question: Text  # type: ignore[assignment]


class _BadRecord(Exception):
    """What is wrong with one record; the loader adds the file and line."""


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _explain(error: ValidationError) -> str:
    parts = []
    for e in error.errors(include_url=False):
        field = ".".join(str(x) for x in e["loc"])
        if not field:  # a check across fields (model validator)
            parts.append(e["msg"].removeprefix("Value error, "))
        elif e["type"] == "missing":
            parts.append(f"missing field '{field}'")
        elif e["type"] == "extra_forbidden":
            parts.append(f"unexpected field '{field}'")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            parts.append(f"field '{field}': {msg} (got {_short(e['input'])})")
    return "; ".join(parts)


def _validate(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise _BadRecord(_explain(e)) from None


def _answer_or_none(answer: str) -> str | None:
    """Gold answers are stripped; a blank one means the record has no usable gold answer."""
    answer = answer.strip()
    return answer or None


def _extras(record: _Record) -> dict[str, Any]:
    return dict(record.model_extra or {})


# --- one converter per format: raw record -> Problem ---------------------------------------------

_LEVEL = re.compile(r"Level (\d+|\?)")


def _from_math(raw: dict[str, Any], index: int, stem: str) -> Problem:
    """MATH (Hendrycks et al.): ``level`` is ``"Level 3"``; ``"Level ?"`` (two train records) -> None."""
    r: _MathRecord = _validate(_MathRecord, raw)
    m = _LEVEL.fullmatch(r.level.strip())
    if m is None:
        raise _BadRecord(f"field 'level': expected 'Level <n>' or 'Level ?' (got {_short(r.level)})")
    level = None if m.group(1) == "?" else int(m.group(1))
    return _problem(
        id=r.unique_id, question=r.problem, answer=_answer_or_none(r.answer), source="math",
        level=level, subject=r.type, solution=r.solution, extra=_extras(r),
    )


def _from_math500(raw: dict[str, Any], index: int, stem: str) -> Problem:
    """MATH-500 (HuggingFaceH4): like MATH with an int ``level`` and ``subject`` for ``type``."""
    r: _Math500Record = _validate(_Math500Record, raw)
    return _problem(
        id=r.unique_id, question=r.problem, answer=_answer_or_none(r.answer), source="math500",
        level=r.level, subject=r.subject, solution=r.solution, extra=_extras(r),
    )


_GSM8K_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)")


def _from_gsm8k(raw: dict[str, Any], index: int, stem: str) -> Problem:
    """GSM8K: ``answer`` is the worked solution ending ``#### <number>``; id ``gsm8k/<stem>/<index>``."""
    r: _Gsm8kRecord = _validate(_Gsm8kRecord, raw)
    if "####" not in r.answer:
        raise _BadRecord(f"field 'answer': no '#### <number>' at its end (got {_short(r.answer[-60:])})")
    solution, number = r.answer.rsplit("####", 1)
    number = number.strip().replace(",", "")
    if not _GSM8K_NUMBER.fullmatch(number):
        raise _BadRecord(f"field 'answer': expected a number after '####' (got {_short(number)})")
    return _problem(
        id=f"gsm8k/{stem}/{index}", question=r.question, answer=number, source="gsm8k",
        solution=solution.rstrip() or None, extra=_extras(r),
    )


def _processbench_item(raw: dict[str, Any], index: int, stem: str) -> ProcessBenchItem:
    r: _ProcessBenchRecord = _validate(_ProcessBenchRecord, raw)
    problem = _problem(id=r.id, question=r.problem, answer=None, source="processbench", extra=_extras(r))
    return _validate(
        ProcessBenchItem,
        dict(problem=problem, steps=r.steps, label=r.label,
             final_answer_correct=r.final_answer_correct, generator=r.generator),
    )


def _from_processbench(raw: dict[str, Any], index: int, stem: str) -> Problem:
    """ProcessBench: the problem only (no gold answer); see :func:`load_processbench` for the rest."""
    return _processbench_item(raw, index, stem).problem


def _from_builtin(raw: dict[str, Any], index: int, stem: str) -> Problem:
    """The project's own format: exactly the fields of :class:`Problem`."""
    r: _BuiltinRecord = _validate(_BuiltinRecord, raw)
    return Problem.model_validate(r.model_dump())


def _problem(**fields: Any) -> Problem:
    return _validate(Problem, fields)


Converter = Callable[[dict[str, Any], int, str], Problem]

CONVERTERS: dict[str, Converter] = {
    "math": _from_math,
    "math500": _from_math500,
    "gsm8k": _from_gsm8k,
    "processbench": _from_processbench,
    "builtin": _from_builtin,
}

# Fields that identify each format in a first record, checked in this order.
_SIGNATURES: tuple[tuple[str, frozenset[str]], ...] = (
    ("processbench", frozenset({"steps", "generator"})),
    ("builtin", frozenset({"id", "question"})),
    ("math500", frozenset({"unique_id", "subject"})),
    ("math", frozenset({"unique_id", "type"})),
    ("gsm8k", frozenset({"question", "answer"})),
)


def detect_format(record: dict[str, Any]) -> str:
    """Name the format of a raw record from its fields; raise ValueError listing them if none fits."""
    keys = set(record)
    for name, signature in _SIGNATURES:
        if signature <= keys:
            return name
    expected = ", ".join(f"{name} ({', '.join(sorted(sig))})" for name, sig in _SIGNATURES)
    raise ValueError(
        f"cannot detect the format from fields {sorted(keys)}; expected one of: {expected}; "
        f"pass format= one of {list(FORMATS)}"
    )


# --- reading local files ------------------------------------------------------------------------


def _records(text: str, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ("<file> line <n>", record) for a JSON Lines text or a JSON list of objects."""
    if not text.strip():
        raise DataError(f"{name}: empty file (no records)")
    if text.lstrip().startswith("["):
        yield from _array_records(text, name)
        return
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=1):
        where = f"{name} line {number}"
        if not line.strip():
            raise DataError(f"{where}: blank line inside a JSON Lines file")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
        yield where, _object(record, where)


def _array_records(text: str, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    decoder = json.JSONDecoder()
    ws = re.compile(r"\s*")
    pos = ws.match(text, text.index("[") + 1).end()
    line, counted = 1, 0
    if text.startswith("]", pos):
        raise DataError(f"{name}: empty file (an empty JSON list)")
    item = 0
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        item += 1
        where = f"{name} line {line} (item {item})"
        try:
            record, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DataError(f"{name} line {e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        yield where, _object(record, where)
        pos = ws.match(text, end).end()
        if text.startswith(",", pos):
            pos = ws.match(text, pos + 1).end()
        elif text.startswith("]", pos):
            rest = text[pos + 1 :]
            if rest.strip():
                lineno = text.count("\n", 0, pos) + 1
                raise DataError(f"{name} line {lineno}: invalid JSON (text after the closing ']')")
            return
        else:
            lineno = text.count("\n", 0, pos) + 1
            raise DataError(f"{name} line {lineno}: invalid JSON (expected ',' or ']' between list items)")


def _object(record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or an int >= 0, got {limit!r}")


def _convert(
    records: Iterable[tuple[str, dict[str, Any]]],
    format: str | None,
    *,
    stem: str,
    origin: str,
    limit: int | None,
    name: str,
) -> list[Problem]:
    """The shared core of the local and hub loaders: detect, convert, check ids are unique."""
    if format is not None and format not in CONVERTERS:
        raise DataError(f"{name}: unknown format {format!r}; expected one of {list(FORMATS)}")
    problems: list[Problem] = []
    first_seen: dict[str, str] = {}
    for index, (where, raw) in enumerate(islice(records, limit)):
        if format is None:
            try:
                format = detect_format(raw)
            except ValueError as e:
                raise DataError(f"{where}: {e}") from None
        try:
            problem = CONVERTERS[format](raw, index, stem)
        except _BadRecord as e:
            raise DataError(f"{where}: {e} ({format} format)") from None
        if problem.id in first_seen:
            raise DataError(f"{where}: duplicate id {problem.id!r} (first at {first_seen[problem.id]})")
        first_seen[problem.id] = where
        problems.append(problem.model_copy(update={"origin": origin}))
    return problems


def load_problems(path: str | Path, *, format: str | None = None, limit: int | None = None) -> list[Problem]:
    """Load problems from a local MATH, MATH-500, GSM8K, ProcessBench or builtin file.

    ``format`` is one of ``math``, ``math500``, ``gsm8k``, ``processbench``, ``builtin``; when
    ``None`` it is detected from the first record's fields. ``limit`` keeps the first records only.
    Files are JSON Lines or a JSON list of objects. Any record that does not fit raises
    :class:`DataError` naming the file, the line (1-based) and what is wrong.
    """
    _check_limit(limit)
    path = Path(path)
    name = str(path)
    if format is not None and format not in CONVERTERS:
        raise DataError(f"{name}: unknown format {format!r}; expected one of {list(FORMATS)}")
    text = _read_text(path)
    return _convert(_records(text, name), format, stem=path.stem, origin=name, limit=limit, name=name)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a data file") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def load_processbench(path: str | Path, *, limit: int | None = None) -> list[ProcessBenchItem]:
    """Load ProcessBench items (problem, steps, label, final_answer_correct, generator) from a file.

    The file is ProcessBench's JSON list (``processbench/math.json``) or the same records as JSON
    Lines. Problem ids are ProcessBench's own (``math-0``); problems carry no gold answer.
    """
    _check_limit(limit)
    path = Path(path)
    name = str(path)
    items: list[ProcessBenchItem] = []
    for index, (where, raw) in enumerate(islice(_records(_read_text(path), name), limit)):
        try:
            item = _processbench_item(raw, index, path.stem)
        except _BadRecord as e:
            raise DataError(f"{where}: {e} (processbench format)") from None
        items.append(item.model_copy(update={"problem": item.problem.model_copy(update={"origin": name})}))
    return items


def load_builtin() -> list[Problem]:
    """The project's own dozen short multi-step problems (``prm_fire/builtin_problems.jsonl``)."""
    resource = resources.files("prm_fire").joinpath(BUILTIN_RESOURCE)
    name = f"prm_fire/{BUILTIN_RESOURCE}"
    text = resource.read_text(encoding="utf-8")
    return _convert(_records(text, name), "builtin", stem="builtin", origin=name, limit=None, name=name)


def find_problem(problems: Sequence[Problem], id: str) -> Problem:
    """The problem with this id; :class:`ProblemNotFoundError` (a KeyError) names the id and files."""
    for problem in problems:
        if problem.id == id:
            return problem
    origins = sorted({p.origin or p.source for p in problems})
    where = ", ".join(origins) if origins else "an empty problem list"
    message = f"no problem with id {id!r} in {where} ({len(problems)} problems)"
    ids = [p.id for p in problems]
    close = difflib.get_close_matches(id, ids, n=3)
    if close:
        message += f"; close ids: {', '.join(map(repr, close))}"
    elif ids:
        message += f"; ids look like {ids[0]!r}"
    raise ProblemNotFoundError(message)


# --- the HuggingFace hub ------------------------------------------------------------------------


def _hendrycks_row(row: dict[str, Any], index: int, split: str, config: str | None) -> dict[str, Any]:
    """EleutherAI/hendrycks_math has no id and no answer field: make an id, take the last \\boxed{}."""
    from prm_fire.grader import extract_answer

    solution = row.get("solution")
    answer = extract_answer(solution) if isinstance(solution, str) else None
    return {"unique_id": f"hendrycks_math/{split}/{config}/{index}", "answer": answer or "", **row}


class HubSpec(BaseModel):
    """How one hub data set maps onto a local format."""

    model_config = ConfigDict(frozen=True)

    format: str
    default_config: str | None = None
    all_configs: tuple[str, ...] = ()
    """When set and no config is given, every one of these configs is loaded and concatenated."""
    prepare: Callable[[dict[str, Any], int, str, str | None], dict[str, Any]] | None = None
    """Fills fields the hub rows lack before the format's converter runs."""


HUB: dict[str, HubSpec] = {
    "HuggingFaceH4/MATH-500": HubSpec(format="math500"),
    "openai/gsm8k": HubSpec(format="gsm8k", default_config="main"),
    "EleutherAI/hendrycks_math": HubSpec(
        format="math",
        all_configs=(
            "algebra", "counting_and_probability", "geometry", "intermediate_algebra",
            "number_theory", "prealgebra", "precalculus",
        ),
        prepare=_hendrycks_row,
    ),
    "Qwen/ProcessBench": HubSpec(format="processbench"),
}


def _hub_problems(
    name: str, rows: Iterable[dict[str, Any]], *, split: str, config: str | None, limit: int | None
) -> list[Problem]:
    """Convert rows of a hub data set (one config, one split) with the local converters."""
    spec = HUB[name]
    label = f"hub:{name}" + (f"/{config}" if config else "")

    def records() -> Iterator[tuple[str, dict[str, Any]]]:
        for index, row in enumerate(rows):
            row = dict(row)
            if spec.prepare is not None:
                row = spec.prepare(row, index, split, config)
            yield f"{label} {split} row {index + 1}", row

    return _convert(records(), spec.format, stem=split, origin=f"{label} {split}", limit=limit, name=label)


def load_hub(name: str, *, split: str, config: str | None = None, limit: int | None = None) -> list[Problem]:
    """Load problems from the HuggingFace hub through ``datasets.load_dataset`` (needs network).

    Known names: ``HuggingFaceH4/MATH-500`` (split test), ``openai/gsm8k`` (config main),
    ``EleutherAI/hendrycks_math`` (one config per subject; all seven when ``config`` is None; the
    answer is the last ``\\boxed{}`` of the solution), ``Qwen/ProcessBench`` (splits gsm8k, math,
    olympiadbench, omnimath). Rows go through the same converters as local files.
    """
    _check_limit(limit)
    if name not in HUB:
        raise DataError(f"unknown hub data set {name!r}; known: {sorted(HUB)}")
    spec = HUB[name]
    import datasets  # lazy: heavy, and only this path needs it

    configs = [config] if config else list(spec.all_configs) or [spec.default_config]
    problems: list[Problem] = []
    for cfg in configs:
        left = None if limit is None else limit - len(problems)
        if left == 0:
            break
        rows = datasets.load_dataset(name, cfg, split=split)
        problems += _hub_problems(name, rows, split=split, config=cfg, limit=left)
    return problems
