"""What the exporter reads, told apart by content, and the step-labelled rows each gives.

- a ProcessBench split (``processbench/gsm8k.json``, a JSON list): the gold labels;
- a ProcessBench results journal of any scorer (``results/processbench/<run>.jsonl``, first line a run
  header): the scorer's flags (first step scored below its threshold); the steps come from the split
  the header names;
- a Table 5 data set (``results/<run>/dataset.jsonl``, one kept response a line): the PRM's
  ``first_error_index`` of each response;
- a branched tree (``results/<run>/trees/<id>.json``): labels from its graded branches, and the only
  source of preference pairs (:mod:`prm_app.export.tree_labels`).

A folder stands for the ``.json`` / ``.jsonl`` files in it. Anything else is an :class:`ExportError`
naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from prm_app.export.rows import AfterError, PreferenceRow, StepwiseRow, stepwise_row
from prm_app.export.tree_labels import tree_pairs, tree_stepwise
from prm_fire.journal import complete_lines

SourceKind = Literal["processbench", "journal", "dataset", "tree"]
RowKind = Literal["stepwise", "pairs"]
ROW_KINDS: tuple[RowKind, ...] = ("stepwise", "pairs")


class ExportError(ValueError):
    """An input the exporter cannot read, or that gives nothing to export."""


def expand_sources(paths: list[Path]) -> list[Path]:
    """Each path, a folder replaced by its ``.json`` / ``.jsonl`` files (sorted); a missing path is an error."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl") and p.is_file())
            if not inside:
                raise ExportError(f"{path}: folder holds no .json or .jsonl file")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise ExportError(f"{path}: no such file or folder")
    return found


def source_kind(path: Path) -> SourceKind:
    """Tell the four inputs apart by their content (see the module docstring)."""
    try:
        if path.suffix == ".json":
            head = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(head, list) and head and isinstance(head[0], dict) and {"steps", "label"} <= head[0].keys():
                return "processbench"
            if isinstance(head, dict) and {"schema_version", "nodes"} <= head.keys():
                return "tree"
        elif path.suffix == ".jsonl":
            lines = complete_lines(path)
            first = json.loads(lines[0][1]) if lines else None
            if isinstance(first, dict) and {"prm", "options", "data"} <= first.keys():
                return "journal"
            if isinstance(first, dict) and {"problem", "response", "steps", "first_error_index"} <= first.keys():
                return "dataset"
    except (ValueError, UnicodeDecodeError) as err:
        raise ExportError(f"{path}: not readable as JSON ({err.__class__.__name__})") from None
    raise ExportError(f"{path}: unknown input format (expected a ProcessBench split, a ProcessBench results "
                      ".jsonl, a Table 5 dataset.jsonl or a tree .json)")


def _processbench_rows(path: Path, after_error: AfterError) -> list[StepwiseRow]:
    from prm_fire.problems import load_processbench

    return [stepwise_row(item.problem.id, item.problem.question, list(item.steps),
                         None if item.label == -1 else item.label, after_error)
            for item in load_processbench(path)]


def _journal_rows(path: Path, after_error: AfterError) -> list[StepwiseRow]:
    from prm_app.evaluation.processbench import predict, read_run
    from prm_fire.problems import DataError, load_processbench

    header, results = read_run(path)
    try:
        items = {item.problem.id: item for item in load_processbench(Path(header.data))}
    except (DataError, FileNotFoundError) as err:
        raise ExportError(f"{path}: its run header names the data file {header.data!r}, which cannot be read "
                          f"from {Path.cwd()} ({err})") from None
    rows = []
    for result in results:
        item = items.get(result.id)
        if item is None:
            raise ExportError(f"{path}: item {result.id!r} is not in {header.data}")
        flagged = predict(result.scores, float(result.record.get("threshold", 0.5)))
        rows.append(stepwise_row(f"{header.prm}:{result.id}", item.problem.question, list(item.steps),
                                 None if flagged == -1 else flagged, after_error))
    return rows


def _dataset_rows(path: Path, after_error: AfterError) -> list[StepwiseRow]:
    from prm_app.experiments.dataset import DatasetItem
    from prm_fire.journal import read_journal

    return [stepwise_row(f"{item.prm}:{item.problem.id}", item.problem.question, [s.text for s in item.steps],
                         item.first_error_index, after_error)
            for item in read_journal(path, DatasetItem)]


def read_rows(path: Path, kind: RowKind = "stepwise",
              after_error: AfterError = "drop") -> list[StepwiseRow] | list[PreferenceRow]:
    """The rows of one input file: step-labelled solutions, or (trees only) preference pairs."""
    from prm_fire.tree import TreeError, load_tree

    source = source_kind(path)
    if kind == "pairs" and source != "tree":
        raise ExportError(f"{path}: preference pairs come from a branched tree, not from a {source} file")
    if source == "tree":
        try:
            tree = load_tree(path)
        except TreeError as err:
            raise ExportError(str(err)) from None
        name = path.stem
        return tree_pairs(tree, source=name) if kind == "pairs" else tree_stepwise(
            tree, source=name, after_error=after_error)
    reader = {"processbench": _processbench_rows, "journal": _journal_rows, "dataset": _dataset_rows}[source]
    return reader(path, after_error)


__all__ = ["ExportError", "ROW_KINDS", "RowKind", "SourceKind", "expand_sources", "read_rows", "source_kind"]
