"""The Table 5 chain on a Ray cluster: engines in a Ray Data actor pool, journals written by the driver.

Rows are problems (and kept items a stop left without all their branch sets). An actor holds one
policy engine and one PRM (:class:`~prm_app.experiments.resources.Resources`) and runs a batch of
``config.wave_size`` rows exactly as the local chain runs a wave: the stage functions
(:func:`~prm_app.experiments.dataset.sample_wave`, :func:`~prm_app.experiments.insertion.branch_items`)
write into a scratch run folder on the actor's node, and the actor returns what they wrote, row by row.

The driver alone writes the run folder, one problem at a time and in problem order: its attempt
line, its tree (atomic rename), its entropy-line cut (if the entropy point is run), then its
insertion lines. Every seed derives from the item id, so the
records equal a local run's. A stop at any moment leaves whole lines: a problem without its attempt
line is redone; a kept item whose insertion lines are incomplete is sent again as an item row, and
only its missing lines are appended, so nothing is counted twice. Ray Data restarts a killed actor
and retries its batch; the rows it had not returned are simply not written yet.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import closing
from typing import Any

from tqdm.auto import tqdm

from prm_fire.entropy import EntropyLine
from prm_app.experiments.config import ExperimentConfig
from prm_app.experiments.dataset import Attempt, DatasetItem, sample_wave, select_problems, write_dataset_view
from prm_app.experiments.insertion import InsertionResult, branch_items, entropy_path, journal_path, tree_path
from prm_app.experiments.resources import Resources
from prm_fire.journal import append_journal, read_journal
from prm_fire.problems import Problem
from prm_fire.scale.executor import run_pool


class ChainWorker:
    """One Ray actor: the run's engines (built on first use) and a batch of rows run as one wave."""

    def __init__(self, config_json: str):
        self.config = ExperimentConfig.model_validate_json(config_json)
        self.resources = Resources(self.config, journal_calls=False)  # a wave's scratch folder goes with it

    def __call__(self, batch: Any) -> Any:
        with tempfile.TemporaryDirectory(prefix="prm-fire-wave-") as scratch_dir:
            scratch = self.config.model_copy(update={"out_dir": scratch_dir})
            new = [Problem.model_validate_json(p) for p, item in zip(batch["problem"], batch["item"]) if not item]
            attempts = {a.problem_id: a for a in (sample_wave(scratch, new, self.resources) if new else [])}
            items = [DatasetItem.model_validate_json(item) if item else attempts[pid].item
                     for pid, item in zip(batch["id"], batch["item"])]
            branch_items(scratch, [i for i in items if i is not None], resources=self.resources)
            spec = self.config.insertion
            sets = {(r.item_id, p, r.method): r for p in spec.points
                    for r in read_journal(journal_path(scratch, p), InsertionResult)}
            cuts = {c.item_id: c for c in read_journal(entropy_path(scratch), EntropyLine)}
            out = {"attempt": [], "tree": [], "entropy": [], "sets": []}
            for pid, item in zip(batch["id"], batch["item"]):
                out["attempt"].append("" if item else attempts[pid].model_dump_json())
                tree = tree_path(scratch, pid)
                out["tree"].append(tree.read_text() if tree.exists() else "")
                out["entropy"].append(cuts[pid].model_dump_json() if pid in cuts else "")
                out["sets"].append(json.dumps([[p, sets[pid, p, m].model_dump_json()] for p in spec.points
                                               for m in spec.methods if (pid, p, m) in sets]))
        return batch.assign(**out).drop(columns=["problem", "item"])

    def __del__(self) -> None:  # Ray Data calls it when the pool shuts down: stop vLLM's workers
        if hasattr(self, "resources"):
            self.resources.close()


class _Writer:
    """The driver's writes for one returned row: attempt line, tree, entropy cut, missing insertion lines."""

    def __init__(self, config: ExperimentConfig):
        self.config = config
        self.cuts = {c.item_id for c in read_journal(entropy_path(config), EntropyLine)}
        self.done = {(p, r.item_id, r.method) for p in config.insertion.points
                     for r in read_journal(journal_path(config, p), InsertionResult)}

    def write(self, row: dict[str, Any]) -> bool:
        """Record one row; True if it was a new problem's attempt."""
        config = self.config
        if row["attempt"]:
            append_journal(config.run_dir / "attempts.jsonl", Attempt.model_validate_json(row["attempt"]))
        if row["tree"]:
            path = tree_path(config, row["id"])
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(row["tree"])
            tmp.replace(path)
        if row["entropy"] and row["id"] not in self.cuts:  # the cut its entropy-line branches were grown from
            append_journal(entropy_path(config), EntropyLine.model_validate_json(row["entropy"]))
            self.cuts.add(row["id"])
        for point, text in json.loads(row["sets"]):
            record = InsertionResult.model_validate_json(text)
            if (point, record.item_id, record.method) not in self.done:
                append_journal(journal_path(config, point), record)
                self.done.add((point, record.item_id, record.method))
        return bool(row["attempt"])


def run_chain_ray(config: ExperimentConfig, *, progress: bool = True) -> list[DatasetItem]:
    """Stages 1 and 2 for every problem of the config's subset on ``config.executor``'s cluster (resuming).

    First the kept items a stop left without all their branch sets, then every untried problem, in
    the order of the local chain; ``config.wave_size`` rows per engine call. Returns the kept items.
    """
    problems = select_problems(config.data)
    chosen = {p.id for p in problems}
    items = write_dataset_view(config)
    spec, writer = config.insertion, _Writer(config)
    lacking = [i for i in items if i.problem.id in chosen
               and any((p, i.problem.id, m) not in writer.done for p in spec.points for m in spec.methods)]
    tried = {a.problem_id for a in read_journal(config.run_dir / "attempts.jsonl", Attempt)}
    todo = [p for p in problems if p.id not in tried]
    rows = [{"id": i.problem.id, "problem": i.problem.model_dump_json(), "item": i.model_dump_json()} for i in lacking]
    rows += [{"id": p.id, "problem": p.model_dump_json(), "item": ""} for p in todo]
    with tqdm(total=len(problems), initial=len(problems) - len(todo), desc="problems", unit="problem",
              disable=not progress) as bar:
        since_view = 0
        returned = run_pool(rows, ChainWorker, {"config_json": config.model_dump_json()}, spec=config.executor,
                            batch_size=config.wave_size, backend_options=config.backend_options)
        with closing(returned):  # a stop here (Ctrl-C, a failed write) also stops a cluster the run started
            for row in returned:
                if writer.write(row):
                    bar.update(1)
                    since_view += 1
                if since_view >= config.wave_size:
                    write_dataset_view(config)
                    since_view = 0
    items = write_dataset_view(config)
    return [i for i in items if i.problem.id in chosen]
