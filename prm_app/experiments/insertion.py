"""Stage 2 of Table 5: branch every data set item at one insertion point with one or both methods.

The branch sets of many items, points and methods go to the generator in one call
(:func:`branch_items`). Per (item, method) one line of ``insertion/<point>.jsonl`` (n, correct,
answers, first tokens), and every branch set in the item's tree ``trees/<item>.json`` (problem -> response with PRM scores ->
prefix -> branches). A rerun skips what the journal holds; seeds derive from (seed, item id, point), so a
killed and resumed run gives the same numbers as an uninterrupted one. The entropy-line point's cut
comes from ``entropy.jsonl`` (one line per item, computed once by the policy's forward pass).
"""

from __future__ import annotations

import re
from pathlib import Path

import networkx as nx
from pydantic import BaseModel, ConfigDict
from tqdm.auto import tqdm

from prm_fire.branching import BranchJob, BranchSet, branch_many
from prm_app.experiments.config import ExperimentConfig
from prm_app.experiments.dataset import DatasetItem, read_items, waves
from prm_app.experiments.resources import Resources
from prm_fire.entropy import EntropyLine
from prm_fire.journal import append_journal, read_journal
from prm_fire.prompts import build_messages
from prm_fire.prefixes import build_prefix
from prm_fire.sampling import Method, stream_seed
from prm_fire.tree import add_branch_set, add_response, load_tree, new_tree, save_tree


class InsertionResult(BaseModel):
    """What one (item, point, method) branch set gave."""

    model_config = ConfigDict(frozen=True)

    item_id: str
    point: str
    method: Method
    kept_steps: int
    n: int
    correct: int
    answers: list[str | None]
    first_tokens: list[str]
    tokens: int
    seconds: float


def insertion_seed(seed: int, item_id: str, point: str) -> int:
    """The seed of an item's branch sets at ``point``: one stream per (item, point), shared by FIRE and
    regular on purpose (paired methods), never the base response's stream."""
    return stream_seed(seed, item_id, f"insertion/{point}")


def journal_path(config: ExperimentConfig, point: str) -> Path:
    return config.run_dir / "insertion" / f"{point}.jsonl"


def entropy_path(config: ExperimentConfig) -> Path:
    """The journal of the items' entropy-line cuts (one line per item)."""
    return config.run_dir / "entropy.jsonl"


def tree_path(config: ExperimentConfig, item_id: str) -> Path:
    return config.run_dir / "trees" / (re.sub(r"[^A-Za-z0-9._-]+", "_", item_id).strip("_") + ".json")


def entropy_lines(config: ExperimentConfig, items: list[DatasetItem], resources: Resources) -> dict[str, EntropyLine]:
    """The entropy-line of each item: from ``entropy.jsonl``, else computed (one forward pass each) and
    appended there, so a rerun never computes an item twice."""
    path = entropy_path(config)
    known = {r.item_id: r for r in read_journal(path, EntropyLine)}
    for item in items:
        if item.problem.id not in known:
            cut = resources.entropy.entropy_line(item.problem.id, build_messages(item.problem), item.response,
                                                 config.step_mode)
            append_journal(path, cut)
            known[cut.item_id] = cut
    return {item.problem.id: known[item.problem.id] for item in items}


def _item_tree(config: ExperimentConfig, item: DatasetItem) -> nx.DiGraph:
    path = tree_path(config, item.problem.id)
    if path.exists():
        return load_tree(path)
    tree = new_tree(item.problem)
    origin = f"processbench:{item.author}" if item.author else f"sampled:{config.model}"
    add_response(tree, item.response, origin=origin, step_mode=config.step_mode, grade=item.grade,
                 prm=item.prm, step_scores=item.step_scores, first_error_index=item.first_error_index,
                 step_reasons=item.step_reasons)
    return tree


def _store(config: ExperimentConfig, item: DatasetItem, result: BranchSet) -> None:
    """Put a branch set in the item's tree, replacing branches a killed run may have left there."""
    tree = _item_tree(config, item)
    prefix_id = f"r0/{result.prefix.point}"
    if prefix_id in tree:
        stale = [c for c in tree.successors(prefix_id) if tree.nodes[c]["data"].branch.method == result.sampling.method]
        tree.remove_nodes_from(stale)
    add_branch_set(tree, "r0", result)
    path = tree_path(config, item.problem.id)
    tmp = path.with_suffix(".tmp")
    save_tree(tree, tmp)
    tmp.replace(path)


def branch_items(
    config: ExperimentConfig,
    items: list[DatasetItem],
    points: list[str] | None = None,
    methods: list[Method] | None = None,
    *,
    resources: Resources,
) -> list[InsertionResult]:
    """Every missing (item, point, method) branch set of ``items`` in ONE generator call; then, item
    by item, each set goes into the item's tree and one line of its point's journal.

    Returns the new results. Sets already in a journal are skipped, and a generator call that returned
    before a kill is replayed from the call journal (:class:`~prm_app.experiments.resources.Resources`),
    so a rerun redoes at most the call in flight (the seeds derive from the item id, so the redone sets equal
    the lost ones).
    """
    points, methods, spec = points or config.insertion.points, methods or config.insertion.methods, config.insertion
    done = {(p, r.item_id, r.method) for p in points for r in read_journal(journal_path(config, p), InsertionResult)}
    wanted = [(item, point, method) for item in items for point in points for method in methods
              if (point, item.problem.id, method) not in done]
    if not wanted:
        return []
    start = resources.clock()
    cuts = entropy_lines(config, list({i.problem.id: i for i, p, _ in wanted if p == "entropy"}.values()), resources)
    jobs = []
    for item, point, method in wanted:
        prefix = build_prefix(item.response, point, step_mode=config.step_mode,
                              first_error_index=item.first_error_index, problem_id=item.problem.id,
                              entropy_index=cuts[item.problem.id].step_index if point == "entropy" else None,
                              label_index=item.label_index if point == "oracle" else None)
        jobs.append(BranchJob(problem=item.problem, prefix=prefix, n=spec.n,
                              sampling=spec.sampling_for(method, insertion_seed(spec.sampling.seed, item.problem.id,
                                                                                point))))
    sets = branch_many(jobs, generator=resources.generator)
    share = round((resources.clock() - start) / len(jobs), 2)
    results = []
    for (item, point, method), result in zip(wanted, sets, strict=True):
        _store(config, item, result)
        record = InsertionResult(
            item_id=item.problem.id, point=point, method=method, kept_steps=result.prefix.kept_steps, n=result.n,
            correct=result.n_correct, answers=[b.answer for b in result.branches],
            first_tokens=[b.first_token for b in result.branches],
            tokens=sum(len(b.token_ids) for b in result.branches), seconds=share)
        append_journal(journal_path(config, point), record)
        results.append(record)
    resources.settle()
    return results


def run_insertion(
    config: ExperimentConfig,
    point: str,
    methods: list[Method] | None = None,
    *,
    items: list[DatasetItem] | None = None,
    resources: Resources | None = None,
    progress: bool = True,
) -> list[InsertionResult]:
    """Branch every item at ``point`` with each method (default: the config's), ``config.wave_size``
    items per generator call; resume; return all results of that point.

    ``items`` defaults to the table's items: the run's kept items, cut to ``insertion.items`` if set
    (the size the power plan fixed; later kept items are not branched again by this stage).
    """
    items = items if items is not None else read_items(config)[: config.insertion.items]
    resources = resources or Resources(config)
    for wave in tqdm(waves(items, config.wave_size), desc=f"insertion {point}", unit="wave", disable=not progress):
        branch_items(config, wave, [point], methods, resources=resources)
    return read_journal(journal_path(config, point), InsertionResult)
