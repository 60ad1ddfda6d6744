"""ProcessBench evaluation: the protocol's arithmetic on real items, the sweep, resuming, the command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prm_app.cli import main
from prm_fire.problems import DataError, load_processbench
import prm_models.label  # noqa: F401  (registers "label")
import prm_models.symbolic  # noqa: F401  (registers "symbolic")
from prm_models import make_prm
from prm_app.evaluation.processbench import (
    SWEEP,
    ItemResult,
    RunHeader,
    compute_metrics,
    evaluate,
    floor_metrics,
    predict,
    rebuild_summary,
    sweep,
)

REPO = Path(__file__).resolve().parents[1]


def _gsm8k(shared_data: Path) -> Path:
    return shared_data / "processbench" / "gsm8k.json"


def test_metrics_of_the_symbolic_checker_on_a_real_slice(shared_data: Path, tmp_path: Path) -> None:
    """gsm8k-195 ... gsm8k-206, counted by hand from the data and the checker's verdicts.

    Erroneous items (label != -1): 195 (label 1), 196 (2), 197 (2), 198 (4), 199 (2). The checker finds
    only gsm8k-198's slip ``$400,000 - $32,000 - $250,000 = $8,000`` in step 4 = its label, and no
    false claim in the others (prediction -1): 1 of 5 right = 20 %. All-correct items 200 ... 206:
    no false claim in any, 7 of 7 = 100 %. F1 = 2 * 20 * 100 / 120 = 33.3 %.
    """
    items = load_processbench(_gsm8k(shared_data))[195:207]
    assert [i.label for i in items] == [1, 2, 2, 4, 2] + [-1] * 7
    header = RunHeader(prm="symbolic", options={}, data="gsm8k[195:207]")
    results = evaluate(make_prm("symbolic"), items, tmp_path / "r.jsonl", header)
    assert [predict(r.scores, 0.5) for r in results] == [-1, -1, -1, 4, -1] + [-1] * 7
    m = compute_metrics(results, 0.5)
    assert (m.erroneous, m.erroneous_correct, m.all_correct, m.all_correct_correct) == (5, 1, 7, 7)
    assert (m.acc_erroneous, m.acc_correct) == (20.0, 100.0)
    assert m.f1 == pytest.approx(100 / 3)
    # the per-step record keeps the claims behind each score
    assert [(s.min_label, s.items, s.correct) for s in m.late] == [(1, 5, 1), (3, 1, 1)]  # gsm8k-198 (label 4)
    # floors on the same items: every erroneous item here has a wrong final answer, so answer-only names
    # paragraph 1 on each and is right on gsm8k-195 (label 1) only; it says "no error" on the 7 others
    floors = floor_metrics(results)
    assert {name: (f.erroneous_correct, f.all_correct_correct, f.late[1].correct) for name, f in floors.items()} == {
        "answer-only": (1, 7, 0), "always-paragraph-1": (1, 0, 0), "always-no-error": (0, 7, 0)}
    assert floors["answer-only"].f1 == pytest.approx(100 / 3) and floors["always-paragraph-1"].f1 == 0.0
    claims = results[3].record["claims"][4]
    assert [(c["text"], c["verdict"]) for c in claims] == [("400,000 - 32,000 - 250,000 = 8,000", "false")]
    assert results[3].abstained is not None and len(results[3].abstained) == len(items[3].steps)


def test_the_label_prm_scores_f1_100_on_the_full_split(shared_data: Path, tmp_path: Path) -> None:
    items = load_processbench(_gsm8k(shared_data))
    header = RunHeader(prm="label", options={}, data=str(_gsm8k(shared_data)))
    results = evaluate(make_prm("label", {}, items=items), items, tmp_path / "label.jsonl", header)
    m = compute_metrics(results, 0.5)
    assert (m.items, m.erroneous, m.all_correct) == (400, 207, 193)
    assert (m.acc_erroneous, m.acc_correct, m.f1) == (100.0, 100.0, 100.0)
    assert {s.f1 for s in sweep(results)} == {100.0}  # 1/0 scores: every threshold in (0, 1] agrees


def test_the_sweep_recomputes_from_stored_scores() -> None:
    results = [
        ItemResult(id="a", label=1, scores=[0.9, 0.3, 0.1]),
        ItemResult(id="b", label=-1, scores=[0.8, 0.6]),
        ItemResult(id="c", label=0, scores=[0.45, 0.9]),
    ]
    by_threshold = {m.threshold: m for m in sweep(results)}
    assert set(by_threshold) == set(SWEEP)
    # t = 0.5: a -> 1 (right), c -> 0 (right), b -> none (right)
    assert by_threshold[0.5].f1 == 100.0
    # t = 0.65: b -> 1 (wrong); t = 0.2: a -> 2 (wrong), c -> none (wrong)
    assert (by_threshold[0.65].acc_erroneous, by_threshold[0.65].acc_correct) == (100.0, 0.0)
    assert (by_threshold[0.2].acc_erroneous, by_threshold[0.2].acc_correct) == (0.0, 100.0)
    assert by_threshold[0.2].f1 == 0.0
    assert compute_metrics(results[1:2], 0.5).f1 is None  # an empty subset has no accuracy


def test_resume_after_a_killed_run_gives_the_same_results(shared_data: Path, tmp_path: Path) -> None:
    """Kill the command mid-run (SIGKILL), run it again: it continues and ends with identical results."""
    data_dir = shared_data / "processbench"
    args = ["processbench", "--prm", "symbolic", "--split", "olympiadbench", "--limit", "200", "--data-dir",
            str(data_dir)]
    killed = tmp_path / "killed"
    command = "import sys; from prm_app.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen([sys.executable, "-c", command, *args, "--out", str(killed)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jsonl = killed.with_name("killed.jsonl")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not jsonl.exists() or jsonl.read_text().count("\n") < 15):
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    lines_at_kill = jsonl.read_text().count("\n")
    assert 15 <= lines_at_kill < 201, "the run was not killed midway"
    with jsonl.open("a") as torn:  # as if killed mid-write
        torn.write('{"id": "olympiadbench-9')
    assert main([*args, "--out", str(killed)]) == 0
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0

    def items(path: Path) -> list[dict]:
        rows = [json.loads(line) for line in path.read_text().splitlines()[1:]]
        return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]

    assert items(jsonl) == items(tmp_path / "whole.jsonl")  # same items, same order, same scores and claims
    resumed, whole = (json.loads(p.with_name(p.name + ".json").read_text()) for p in (killed, tmp_path / "whole"))
    assert resumed["metrics"] == whole["metrics"] and resumed["items"] == 200


def test_a_results_file_of_another_run_is_not_mixed_in(shared_data: Path, tmp_path: Path) -> None:
    items = load_processbench(_gsm8k(shared_data), limit=3)
    path = tmp_path / "r.jsonl"
    evaluate(make_prm("label", {}, items=items), items, path, RunHeader(prm="label", options={}, data="gsm8k"))
    with pytest.raises(ValueError, match="holds results of another run"):
        evaluate(make_prm("symbolic"), items, path, RunHeader(prm="symbolic", options={}, data="gsm8k"))


def test_the_command_writes_jsonl_json_and_markdown(shared_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "label-gsm8k"
    code = main(["processbench", "--prm", "label", "--split", "gsm8k", "--limit", "250", "--sweep",
                 "--data-dir", str(shared_data / "processbench"), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    expected = "F1 100.0  (erroneous-subset accuracy 100.0, all-correct accuracy 100.0, threshold 0.5, 250 items)"
    assert expected in printed
    summary = json.loads(out.with_name("label-gsm8k.json").read_text())
    assert summary["metrics"]["f1"] == 100.0 and len(summary["sweep"]) == len(SWEEP)
    table = out.with_name("label-gsm8k.md").read_text()
    assert ("| label | gsm8k | 250 | 100.0 (201/201) | 100.0 (49/49) | 100.0 | 100.0 (168/168) | 100.0 (59/59) "
            "| 0.5 |") in table
    assert "| floor: always-no-error | gsm8k | 250 | 0.0 (0/201) | 100.0 (49/49) | 0.0 |" in table
    assert out.with_name("label-gsm8k.jsonl").read_text().count("\n") == 251


def test_bad_input_is_reported(shared_data: Path, tmp_path: Path, capsys) -> None:
    base = ["processbench", "--split", "gsm8k", "--data-dir", str(shared_data / "processbench"),
            "--out", str(tmp_path / "x")]
    assert main([*base, "--prm", "symbolic", "--prm-option", "claim_timeout=soon"]) == 2
    assert "claim_timeout" in capsys.readouterr().err
    assert main([*base, "--prm", "nope"]) == 2
    assert "unknown PRM scorer 'nope'" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    records = json.loads(_gsm8k(shared_data).read_text())[:2]
    records[1]["label"] = "two"
    (broken / "gsm8k.json").write_text(json.dumps(records))
    with pytest.raises(DataError, match=r"gsm8k.json line 1 \(item 2\): field 'label'"):
        load_processbench(broken / "gsm8k.json")
    assert main(["processbench", "--prm", "label", "--split", "gsm8k", "--data-dir", str(broken),
                 "--out", str(tmp_path / "y")]) == 2
    assert "field 'label'" in capsys.readouterr().err


def test_a_seeded_sample_is_scored_in_drawn_order_and_named_in_the_header(shared_data: Path, tmp_path: Path) -> None:
    from prm_app.evaluation.processbench import sample_items

    out = tmp_path / "label-sample"
    args = ["processbench", "--prm", "label", "--split", "gsm8k", "--sample", "20", "--seed", "3",
            "--data-dir", str(shared_data / "processbench"), "--out", str(out)]
    assert main(args) == 0
    lines = (tmp_path / "label-sample.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["sample"] == "20 items, seed 3"
    expected = [item.problem.id for item in sample_items(load_processbench(_gsm8k(shared_data)), 20, 3)]
    assert [json.loads(line)["id"] for line in lines[1:]] == expected
    assert expected[:7] == [item.problem.id for item in sample_items(load_processbench(_gsm8k(shared_data)), 7, 3)]
    assert sorted(expected) != expected  # drawn order, not file order
    assert json.loads((tmp_path / "label-sample.json").read_text())["metrics"]["f1"] == 100.0
    with pytest.raises(SystemExit):
        main([*args, "--limit", "5"])  # --limit and --sample exclude each other


def test_the_answer_only_floor_says_no_error_where_the_final_answer_is_right(shared_data: Path) -> None:
    """gsm8k-208 (label 4) ends on the right answer after a wrong step: the floor misses it."""
    item = next(i for i in load_processbench(_gsm8k(shared_data)) if i.problem.id == "gsm8k-208")
    assert (item.label, item.final_answer_correct) == (4, True)
    result = ItemResult(id=item.problem.id, label=item.label, scores=[1.0] * len(item.steps),
                        final_answer_correct=item.final_answer_correct)
    assert floor_metrics([result])["answer-only"].erroneous_correct == 0
    assert "answer-only" not in floor_metrics([result.model_copy(update={"final_answer_correct": None})])


def test_the_report_is_rebuilt_from_the_results_file_alone(shared_data: Path, tmp_path: Path, capsys) -> None:
    """A sample of 30: the floors are on those 30 items; deleting the summary and rebuilding it from the
    JSONL gives the same numbers (the wall time, not in the JSONL, is then unknown)."""
    out = tmp_path / "symbolic-sample"
    assert main(["processbench", "--prm", "symbolic", "--split", "gsm8k", "--sample", "30", "--seed", "1",
                 "--data-dir", str(shared_data / "processbench"), "--out", str(out)]) == 0
    written = json.loads(out.with_name("symbolic-sample.json").read_text())
    sampled = {json.loads(line)["id"] for line in out.with_name("symbolic-sample.jsonl").read_text().splitlines()[1:]}
    by_id = {i.problem.id: i for i in load_processbench(_gsm8k(shared_data))}
    floor = written["floors"]["answer-only"]
    assert floor["items"] == 30
    assert floor["erroneous_correct"] == sum(by_id[i].label == 1 and not by_id[i].final_answer_correct for i in sampled)
    assert written["gain_over_answer_only"] == pytest.approx(written["metrics"]["f1"] - floor["f1"])
    assert rebuild_summary(out.with_name("symbolic-sample.jsonl")).model_dump(mode="json") == written
    for suffix in (".json", ".md"):
        out.with_name("symbolic-sample" + suffix).unlink()
    capsys.readouterr()
    assert main(["processbench-report", str(out.with_name("symbolic-sample.jsonl"))]) == 0
    assert "| symbolic-sample | gsm8k | 30 |" in capsys.readouterr().out
    rebuilt = json.loads(out.with_name("symbolic-sample.json").read_text())
    assert rebuilt["wall_seconds"] is None
    assert {k: v for k, v in rebuilt.items() if k not in ("wall_seconds", "results")} == {
        k: v for k, v in written.items() if k not in ("wall_seconds", "results")}
    assert "| floor: answer-only | gsm8k | 30 |" in out.with_name("symbolic-sample.md").read_text()


def test_every_committed_summary_matches_its_results_file() -> None:
    """The committed .json reports are what their committed .jsonl journals give today."""
    journals = sorted((REPO / "results" / "processbench").glob("*.jsonl"))
    assert journals
    for journal in journals:
        committed = json.loads(journal.with_suffix(".json").read_text())
        assert rebuild_summary(journal).model_dump(mode="json") == committed, journal.name


def test_report_bad_input_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["processbench-report", str(tmp_path / "none.jsonl")]) == 2
    assert capsys.readouterr().err.strip().endswith("none.jsonl: no such file")
    not_results = tmp_path / "x.jsonl"
    not_results.write_text('{"hello": 1}\n')
    assert main(["processbench-report", str(not_results)]) == 2
    err = capsys.readouterr().err
    assert "x.jsonl: first line is not a run header" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "x.md").exists()
