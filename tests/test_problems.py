"""Loading the real benchmark files, the builtin problems, and every malformed-input error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prm_fire.problems import (
    FORMATS,
    DataError,
    Problem,
    ProblemNotFoundError,
    _hub_problems,
    detect_format,
    find_problem,
    load_builtin,
    load_hub,
    load_problems,
    load_processbench,
)


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, braces balanced (a test-local helper)."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None


# --- real files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relpath", "source", "count"),
    [
        ("math/train.jsonl", "math", 7500),
        ("math/test.jsonl", "math", 5000),
        ("math500/test.jsonl", "math500", 500),
        ("gsm8k/train.jsonl", "gsm8k", 7473),
        ("gsm8k/test.jsonl", "gsm8k", 1319),
        ("processbench/gsm8k.json", "processbench", 400),
        ("processbench/math.json", "processbench", 1000),
        ("processbench/olympiadbench.json", "processbench", 1000),
    ],
)
def test_real_file_loads_with_detected_format(shared_data: Path, relpath: str, source: str, count: int) -> None:
    problems = load_problems(shared_data / relpath)
    assert len(problems) == count
    assert {p.source for p in problems} == {source}
    assert len({p.id for p in problems}) == count
    assert all(p.origin == str(shared_data / relpath) for p in problems)
    # an explicit format gives the same records
    assert load_problems(shared_data / relpath, format=source, limit=3) == problems[:3]


def test_math_record_fields(shared_data: Path) -> None:
    problems = load_problems(shared_data / "math/test.jsonl")
    p = find_problem(problems, "test/algebra/1.json")
    assert p.question.startswith("How many vertical asymptotes does the graph of $y=\\frac{2}{x^2+x-6}$")
    assert (p.answer, p.level, p.subject, p.source) == ("2", 3, "Algebra", "math")
    assert p.solution is not None and "\\boxed{2}" in p.solution


def test_math_answers_are_stripped(shared_data: Path) -> None:
    p = find_problem(load_problems(shared_data / "math/test.jsonl"), "test/algebra/2804.json")
    assert p.answer == "\\frac{1}{8}"  # the file has " \\frac{1}{8}"


def test_math_train_level_question_mark_is_none(shared_data: Path) -> None:
    problems = load_problems(shared_data / "math/train.jsonl")
    unknown = sorted(p.id for p in problems if p.level is None)
    assert unknown == ["train/geometry/377.json", "train/geometry/471.json"]
    assert find_problem(problems, "train/geometry/377.json").answer == "52"
    assert {p.level for p in problems} == {1, 2, 3, 4, 5, None}


def test_math_train_blank_answers_become_none(shared_data: Path) -> None:
    # two train records have an empty \boxed{} and answer "": no gold answer, not a skipped record
    problems = load_problems(shared_data / "math/train.jsonl")
    assert sorted(p.id for p in problems if p.answer is None) == [
        "train/number_theory/7115.json",
        "train/number_theory/7117.json",
    ]


def test_math500_record_fields(shared_data: Path) -> None:
    problems = load_problems(shared_data / "math500/test.jsonl")
    p = problems[0]
    assert p.id == "test/precalculus/807.json"
    assert p.answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert (p.level, p.subject) == (2, "Precalculus")
    # MATH-500's answer is taken as given, even where the solution's box carries units
    assert find_problem(problems, "test/precalculus/927.json").answer == "90"


def test_gsm8k_answer_parsed(shared_data: Path) -> None:
    problems = load_problems(shared_data / "gsm8k/test.jsonl")
    p = problems[0]
    assert p.id == "gsm8k/test/0"
    assert p.question.startswith("Janet\u2019s ducks lay 16 eggs per day.")
    assert p.answer == "18"
    assert p.solution is not None and p.solution.endswith("$<<9*2=18>>18 every day at the farmer\u2019s market.")
    assert "####" not in p.solution
    assert all(p.answer is not None and "," not in p.answer and "####" not in p.answer for p in problems)


def test_gsm8k_thousands_comma_removed(shared_data: Path) -> None:
    raw = [json.loads(line) for line in (shared_data / "gsm8k/test.jsonl").read_text().splitlines()]
    index = next(i for i, r in enumerate(raw) if "," in r["answer"].rsplit("####", 1)[1])
    number = raw[index]["answer"].rsplit("####", 1)[1].strip()
    p = find_problem(load_problems(shared_data / "gsm8k/test.jsonl"), f"gsm8k/test/{index}")
    assert p.answer == number.replace(",", "") and p.answer.isdigit()


def test_processbench_items(shared_data: Path) -> None:
    items = load_processbench(shared_data / "processbench/math.json")
    assert len(items) == 1000
    first = items[0]
    assert first.problem.id == "math-0"
    assert first.problem.question == "Determine the remainder of 194 (mod 11)."
    assert first.problem.answer is None
    assert (first.label, first.final_answer_correct, first.generator) == (0, False, "Meta-Llama-3-8B-Instruct")
    assert len(first.steps) == 2 and first.steps[1].endswith("\\boxed{9}.")
    assert all(-1 <= it.label < len(it.steps) for it in items)
    assert sum(it.label == -1 for it in items) == 406
    assert [it.problem for it in items[:5]] == load_problems(shared_data / "processbench/math.json", limit=5)


def test_limit_reads_only_the_first_records(shared_data: Path, tmp_path: Path) -> None:
    assert [p.id for p in load_problems(shared_data / "gsm8k/train.jsonl", limit=2)] == [
        "gsm8k/train/0",
        "gsm8k/train/1",
    ]
    assert len(load_processbench(shared_data / "processbench/gsm8k.json", limit=7)) == 7
    bad = tmp_path / "bad_tail.jsonl"
    bad.write_text('{"question": "What is 1+1?", "answer": "2\\n#### 2"}\n{not json\n')
    assert len(load_problems(bad, limit=1)) == 1  # the broken line 2 is never read


def test_hub_rows_use_the_same_converters(shared_data: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = [json.loads(line) for line in (shared_data / "math500/test.jsonl").read_text().splitlines()]
    ds = datasets.Dataset.from_list(rows[:20])
    problems = _hub_problems("HuggingFaceH4/MATH-500", ds, split="test", config=None, limit=None)
    local = load_problems(shared_data / "math500/test.jsonl", limit=20)
    assert [p.model_copy(update={"origin": None}) for p in problems] == [
        p.model_copy(update={"origin": None}) for p in local
    ]
    assert problems[0].origin == "hub:HuggingFaceH4/MATH-500 test"

    rows = [json.loads(line) for line in (shared_data / "gsm8k/test.jsonl").read_text().splitlines()[:5]]
    gsm = _hub_problems("openai/gsm8k", datasets.Dataset.from_list(rows), split="test", config="main", limit=3)
    assert [p.id for p in gsm] == ["gsm8k/test/0", "gsm8k/test/1", "gsm8k/test/2"]
    assert gsm[0].answer == "18"


def test_hub_hendrycks_math_takes_the_last_boxed_answer(shared_data: Path) -> None:
    datasets = pytest.importorskip("datasets")
    pytest.importorskip("prm_fire.grader")
    rows = [json.loads(line) for line in (shared_data / "math/test.jsonl").read_text().splitlines()[:30]]
    hub_rows = [{k: r[k] for k in ("problem", "level", "type", "solution")} for r in rows]  # the hub's fields
    problems = _hub_problems(
        "EleutherAI/hendrycks_math", datasets.Dataset.from_list(hub_rows), split="test", config="algebra", limit=None
    )
    assert [p.answer for p in problems] == [r["answer"].strip() for r in rows]
    assert problems[3].id == "hendrycks_math/test/algebra/3"


def test_load_hub_unknown_name() -> None:
    with pytest.raises(DataError, match=r"unknown hub data set 'nobody/nothing'.*openai/gsm8k"):
        load_hub("nobody/nothing", split="test")


# --- builtin ----------------------------------------------------------------------------------


def test_builtin_problems() -> None:
    problems = load_builtin()
    assert 10 <= len(problems) <= 15
    assert [p.id for p in problems] == [f"builtin/{i}" for i in range(1, len(problems) + 1)]
    for p in problems:
        assert p.source == "builtin" and p.level in (1, 2) and p.subject
        assert p.solution is not None and p.answer is not None
        lines = p.solution.strip().splitlines()
        assert len(lines) >= 4, f"{p.id}: expected 3+ reasoning lines and an answer line"
        assert lines[-1].endswith(f"\\boxed{{{p.answer}}}"), p.id
        assert last_boxed(p.solution) == p.answer, p.id


def test_builtin_file_loads_through_load_problems() -> None:
    path = Path(__file__).resolve().parents[1] / "prm_fire" / "builtin_problems.jsonl"
    problems = load_problems(path)
    assert [p.model_copy(update={"origin": None}) for p in problems] == [
        p.model_copy(update={"origin": None}) for p in load_builtin()
    ]


def test_builtin_round_trips_through_model_dump_json(tmp_path: Path) -> None:
    problems = load_builtin()
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(p.model_dump_json() + "\n" for p in problems))
    again = load_problems(path, format="builtin")
    assert [p.model_copy(update={"origin": None}) for p in again] == [
        p.model_copy(update={"origin": None}) for p in problems
    ]


# --- malformed input --------------------------------------------------------------------------

GOOD_GSM8K = '{"question": "Tom has 3 apples and buys 2 more. How many now?", "answer": "3 + 2 = 5\\n#### 5"}'
MATH_RECORD = {
    "unique_id": "x/1.json", "problem": "What is $1+1$?", "level": "Level 1", "type": "Algebra",
    "solution": "$1+1=\\boxed{2}$", "answer": "2",
}
GOOD_MATH = json.dumps(MATH_RECORD)
NO_ANSWER_MATH = json.dumps({k: v for k, v in MATH_RECORD.items() if k != "answer"})


@pytest.mark.parametrize(
    ("case", "text", "format", "expected"),
    [
        ("invalid JSON line", f"{GOOD_GSM8K}\n{GOOD_GSM8K}\n{{\"question\": \"x\",\n", None,
         r"line 3: invalid JSON"),
        ("missing field", f"{GOOD_MATH}\n{NO_ANSWER_MATH}\n", None,
         r"line 2: missing field 'answer'"),
        ("empty file", "", None, r": empty file"),
        ("whitespace-only file", "\n  \n", "gsm8k", r": empty file"),
        ("empty question", f'{GOOD_GSM8K}\n{{"question": "  ", "answer": "#### 4"}}\n', None,
         r"line 2: field 'question': must not be empty"),
        ("undetectable fields", '{"prompt": "What is 2+2?", "target": "4"}\n', None,
         r"line 1: cannot detect the format from fields \['prompt', 'target'\]"),
        ("wrong type", GOOD_MATH.replace('"answer": "2"', '"answer": 2') + "\n", None,
         r"line 1: field 'answer': Input should be a valid string \(got 2\)"),
        ("bad MATH level", GOOD_MATH.replace("Level 1", "hard") + "\n", "math",
         r"line 1: field 'level': expected 'Level <n>' or 'Level \?' \(got 'hard'\)"),
        ("GSM8K answer without ####", '{"question": "What is 2+2?", "answer": "4"}\n', None,
         r"line 1: field 'answer': no '#### <number>'"),
        ("GSM8K non-number after ####", '{"question": "What is 2+2?", "answer": "2+2\\n#### four"}\n', None,
         r"line 1: field 'answer': expected a number after '####' \(got 'four'\)"),
        ("not an object", f"{GOOD_GSM8K}\n[1, 2]\n", None, r"line 2: expected a JSON object, got list"),
        ("blank line inside", f"{GOOD_GSM8K}\n\n{GOOD_GSM8K}\n", None, r"line 2: blank line"),
        ("duplicate id", f"{GOOD_MATH}\n{GOOD_MATH}\n", None,
         r"line 2: duplicate id 'x/1.json' \(first at .*line 1\)"),
        ("builtin unknown field", '{"id": "a", "question": "q?", "source": "builtin", "answr": "1"}\n', None,
         r"line 1: unexpected field 'answr'"),
        ("wrong format forced", f"{GOOD_GSM8K}\n", "math", r"line 1: missing field 'unique_id'.*\(math format\)"),
    ],
)
def test_malformed_input_names_file_line_and_problem(
    tmp_path: Path, case: str, text: str, format: str | None, expected: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(DataError, match=expected) as info:
        load_problems(path, format=format)
    assert str(path) in str(info.value), case


def test_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "some.jsonl"
    path.write_text(GOOD_GSM8K + "\n")
    with pytest.raises(DataError, match=r"some\.jsonl: unknown format 'csv'; expected one of \['math', "):
        load_problems(path, format="csv")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.jsonl: no such file"):
        load_problems(tmp_path / "nope.jsonl")


def _processbench_record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "id": "pb-0", "generator": "m", "problem": "What is 2+2?", "steps": ["2+2=4.", "So \\boxed{4}."],
        "final_answer_correct": True, "label": -1,
    }
    return record | changes


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([_processbench_record(), _processbench_record(id="pb-1", label=2)],
         r"line 13 \(item 2\): label 2 is past the last step \(there are 2 steps\)"),
        ([_processbench_record(), _processbench_record(id="pb-1", final_answer_correct="yes")],
         r"line 13 \(item 2\): field 'final_answer_correct': Input should be a valid boolean"),
        ([_processbench_record(steps=[])], r"line 2 \(item 1\): field 'steps': List should have at least 1 item"),
        ([_processbench_record(steps=["ok", ""])], r"line 2 \(item 1\): field 'steps.1': must not be empty"),
    ],
)
def test_processbench_malformed(tmp_path: Path, records: list[dict[str, object]], expected: str) -> None:
    path = tmp_path / "pb.json"
    path.write_text(json.dumps(records, indent=2))
    with pytest.raises(DataError, match=expected) as info:
        load_processbench(path)
    assert str(path) in str(info.value)


def test_processbench_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "pb.json"
    text = json.dumps([_processbench_record(), _processbench_record(id="pb-1")], indent=2)
    path.write_text(text.replace('"pb-1",', '"pb-1"'))  # drop the comma ending line 14
    with pytest.raises(DataError, match=r"pb\.json line 15: invalid JSON \(Expecting ',' delimiter"):
        load_processbench(path)


def test_processbench_empty_list(tmp_path: Path) -> None:
    path = tmp_path / "pb.json"
    path.write_text("[\n]\n")
    with pytest.raises(DataError, match=r"pb\.json: empty file"):
        load_processbench(path)


def test_detect_format_on_real_first_records(shared_data: Path) -> None:
    firsts = {
        "math": json.loads((shared_data / "math/test.jsonl").read_text().split("\n", 1)[0]),
        "math500": json.loads((shared_data / "math500/test.jsonl").read_text().split("\n", 1)[0]),
        "gsm8k": json.loads((shared_data / "gsm8k/test.jsonl").read_text().split("\n", 1)[0]),
        "processbench": json.loads((shared_data / "processbench/gsm8k.json").read_text())[0],
        "builtin": load_builtin()[0].model_dump(),
    }
    assert set(firsts) == set(FORMATS)
    assert {name: detect_format(record) for name, record in firsts.items()} == {n: n for n in firsts}


# --- find_problem -----------------------------------------------------------------------------


def test_find_problem_unknown_id_names_id_and_file(shared_data: Path) -> None:
    problems = load_problems(shared_data / "math500/test.jsonl")
    with pytest.raises(ProblemNotFoundError) as info:
        find_problem(problems, "test/precalculus/80.json")
    message = str(info.value)
    assert "'test/precalculus/80.json'" in message
    assert str(shared_data / "math500/test.jsonl") in message
    assert "close ids: 'test/precalculus/807.json'" in message
    assert isinstance(info.value, KeyError)


def test_find_problem_in_an_empty_list() -> None:
    with pytest.raises(KeyError, match="no problem with id 'a' in an empty problem list"):
        find_problem([], "a")


def test_find_problem_without_origin() -> None:
    problems = [Problem(id="p1", question="What is 1+1?", answer="2", source="mine")]
    assert find_problem(problems, "p1") is problems[0]
    with pytest.raises(KeyError, match=r"no problem with id 'q' in mine \(1 problems\); ids look like 'p1'"):
        find_problem(problems, "q")
