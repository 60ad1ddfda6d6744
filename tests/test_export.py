"""prm_app/export and `prm-fire export`: real ProcessBench labels, a scorer's committed journal, a committed
Table 5 data set and committed trees, written in each format and read back with `datasets`."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from prm_app.cli import main
from prm_app.export import ExportError, collect_rows, export, stepwise_row, tree_pairs, tree_stepwise
from prm_fire.problems import load_processbench
from prm_fire.tree import load_tree, node_text

REPO = Path(__file__).resolve().parents[1]
TREE = REPO / "results" / "cpu-power" / "trees" / "gsm8k_train_1001.json"
STRING = datasets.Value("string")
TRL_STEPWISE = {"prompt": STRING, "completions": datasets.List(STRING), "labels": datasets.List(datasets.Value("bool"))}
TRL_PREFERENCE = {"prompt": STRING, "chosen": STRING, "rejected": STRING}


def _read_back(path: Path) -> datasets.Dataset:
    """The written output, loaded the way a TRL user would load it."""
    if path.is_dir():
        return datasets.load_from_disk(str(path))
    if path.suffix == ".parquet":
        return datasets.Dataset.from_parquet(str(path))
    return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(path.parent / "cache"))


def _has_columns(table: datasets.Dataset, expected: dict) -> None:
    for name, feature in expected.items():
        assert table.features[name] == feature, (name, table.features[name])


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)  # journals name their data file relative to the repository root


@pytest.mark.parametrize("name", ["labels", "labels.parquet", "labels.jsonl"])
def test_processbench_labels_in_each_format_read_back_with_trl_columns(shared_data, tmp_path, name) -> None:
    split = shared_data / "processbench" / "gsm8k.json"
    out, count = export([split], tmp_path / name)
    table = _read_back(out)
    _has_columns(table, TRL_STEPWISE)
    assert count == table.num_rows == 400
    items = load_processbench(split)
    first = table[0]  # gsm8k-0: first error at step 1 -> the completion ends there
    assert (first["id"], items[0].label) == ("gsm8k-0", 1)
    assert first["prompt"] == items[0].problem.question
    assert first["completions"] == items[0].steps[:2] and first["labels"] == [True, False]
    correct = next(i for i, item in enumerate(items) if item.label == -1)
    assert table[correct]["labels"] == [True] * len(items[correct].steps)


def test_after_error_false_keeps_the_later_steps_labelled_false(shared_data) -> None:
    item = load_processbench(shared_data / "processbench" / "gsm8k.json", limit=1)[0]
    row = stepwise_row(item.problem.id, item.problem.question, item.steps, item.label, after_error="false")
    assert row.completions == item.steps and row.labels == [True] + [False] * (len(item.steps) - 1)


def test_a_scorer_journal_gives_the_scorer_flags(tmp_path) -> None:
    journal = REPO / "results" / "processbench" / "reference-gsm8k.jsonl"
    out, count = export([journal], tmp_path / "flags.parquet")
    table = _read_back(out)
    _has_columns(table, TRL_STEPWISE)
    lines = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    assert count == len(lines) == 400
    by_id = {row["id"]: row for row in table}
    for line in lines[:50]:
        flagged = next((i for i, s in enumerate(line["scores"]) if s < 0.5), None)
        labels = by_id[f"reference:{line['id']}"]["labels"]
        assert labels == ([True] * len(line["scores"]) if flagged is None else [True] * flagged + [False])


def test_a_table5_data_set_gives_its_prm_first_errors(tmp_path) -> None:
    data = REPO / "results" / "cpu-power" / "dataset.jsonl"
    out, count = export([data], tmp_path / "table5.jsonl")
    table = _read_back(out)
    _has_columns(table, TRL_STEPWISE)
    items = [json.loads(line) for line in data.read_text().splitlines()]
    assert count == len(items) == table.num_rows
    first = items[0]
    k = first["first_error_index"]
    assert table[0]["completions"] == [s["text"] for s in first["steps"]][: k + 1]
    assert table[0]["labels"] == [True] * k + [False]


def test_tree_step_labels_come_from_graded_branches() -> None:
    """gsm8k/train/1001: of the response's cuts only line2 (after step 0) has a correct branch (fire/6), line3
    (after step 1) has none; so step 0 is right and step 1 the first wrong one. The correct branch's own
    text is right at every step."""
    tree = load_tree(TREE)
    rows = {r.id: r for r in tree_stepwise(tree, source="t")}
    assert set(rows) == {"t:r0", "t:r0/line2/fire/6"}
    response = tree.nodes["r0"]["data"]
    assert rows["t:r0"].completions == [s.text for s in response.steps[:2]]
    assert rows["t:r0"].labels == [True, False]
    assert tree.nodes["r0/line2/fire/6"]["data"].branch.correct
    assert all(rows["t:r0/line2/fire/6"].labels) and "".join(rows["t:r0/line2/fire/6"].completions) in \
        node_text(tree, "r0/line2/fire/6").replace("\n", "")


@pytest.mark.parametrize("name", ["pairs", "pairs.parquet", "pairs.jsonl"])
def test_sibling_branches_as_preference_pairs(tmp_path, name) -> None:
    tree = load_tree(TREE)
    pairs = tree_pairs(tree, source="t")
    assert len(pairs) == 19  # line2: 1 correct branch of 20, against each of the 19 others; no other cut has one
    assert all(p.chosen.startswith(p.prefix) and p.rejected.startswith(p.prefix) for p in pairs)
    out, count = export([TREE], tmp_path / name, kind="pairs")
    table = _read_back(out)
    _has_columns(table, TRL_PREFERENCE)
    assert count == table.num_rows == 19
    assert set(table["chosen"]) == {node_text(tree, "r0/line2/fire/6")}


def test_a_folder_of_committed_trees(tmp_path) -> None:
    trees = sorted((REPO / "results" / "cpu-power" / "trees").glob("*.json"))[:5]
    folder = tmp_path / "trees"
    folder.mkdir()
    for tree in trees:
        (folder / tree.name).write_text(tree.read_text())
    rows = collect_rows([folder])
    assert {r.id.split(":")[0] for r in rows} == {t.stem for t in trees}
    assert all(len(r.completions) == len(r.labels) and (all(r.labels[:-1])) for r in rows)


def _no_output(tmp_path: Path, name: str) -> None:
    assert not any(p.name.startswith((name, f".{name}")) for p in tmp_path.iterdir())


def test_bad_input_exits_2_with_one_line_and_writes_nothing(shared_data, tmp_path, capsys) -> None:
    split = str(shared_data / "processbench" / "gsm8k.json")
    assert main(["export", str(REPO / "README.md"), "--out", str(tmp_path / "a.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "README.md: unknown input format" in err
    _no_output(tmp_path, "a.jsonl")

    ungraded = json.loads(TREE.read_text())
    for node in ungraded["nodes"]:
        if node["data"]["kind"] == "branch":
            node["data"]["branch"]["grade"] = None
    (tmp_path / "ungraded.json").write_text(json.dumps(ungraded))
    assert main(["export", str(tmp_path / "ungraded.json"), "--out", str(tmp_path / "b.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ungraded: the tree has no graded branches" in err
    _no_output(tmp_path, "b.parquet")

    (tmp_path / "file").write_text("x")
    assert main(["export", split, "--out", str(tmp_path / "file" / "c.jsonl")]) == 2
    assert capsys.readouterr().err.strip().endswith("file: not a folder")
    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "mine.txt").write_text("keep me")
    assert main(["export", split, "--out", str(keep)]) == 2
    assert "holds no saved dataset; refusing to replace it" in capsys.readouterr().err
    assert [p.name for p in keep.iterdir()] == ["mine.txt"]
    assert main(["export", split, "--kind", "pairs", "--out", str(tmp_path / "d.jsonl")]) == 2
    assert "preference pairs come from a branched tree" in capsys.readouterr().err
    _no_output(tmp_path, "d.jsonl")
    with pytest.raises(SystemExit) as stop:  # argparse: one line, exit 2
        main(["export", split, "--format", "csv", "--out", str(tmp_path / "e")])
    assert stop.value.code == 2 and capsys.readouterr().err.count("\n") == 1
    with pytest.raises(ExportError, match="no such file or folder"):
        collect_rows([tmp_path / "missing.json"])


def test_the_command_replaces_a_saved_dataset_whole(shared_data, tmp_path, capsys) -> None:
    out = tmp_path / "steps"
    split = str(shared_data / "processbench" / "math.json")
    assert main(["export", split, "--out", str(out)]) == 0
    assert "1000 stepwise rows from 1 file(s)" in capsys.readouterr().out
    assert main(["export", str(TREE), "--out", str(out)]) == 0
    assert _read_back(out).num_rows == 2 and [p.name for p in tmp_path.iterdir()] == ["steps"]
