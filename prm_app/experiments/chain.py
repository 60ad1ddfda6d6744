"""The whole Table 5 chain in waves of problems: base responses, PRM, filter, then every insertion.

Running stage 1 over all problems before stage 2 leaves, when a long run is stopped, a data set with
no branches yet, or the first insertion points done and the last ones empty. Here problems go in
waves of ``config.wave_size``: one generator call samples the wave's base responses, the PRM scores
them together (the rollout PRM: one call per search round), and one call grows every branch set
(points x methods) of the wave's kept items, before the next wave starts. The engine sees a wave's
sequences at once instead of one branch set at a time.

The journals are the stages' own and every seed derives from an item's id, so the records equal
those of running the stages one after the other, whatever the wave size; the first N problems give
the numbers of ``limit = N``. A stop leaves finished waves complete, and inside a wave every engine call that
returned is in the call journal (:class:`~prm_app.experiments.resources.Resources`): a rerun replays those
calls, first completes the branch sets of kept items that lack some (a stop inside a wave's stage 2), then
goes on; it redoes at most the engine call the stop cut short.
"""

from __future__ import annotations

from tqdm.auto import tqdm

from prm_app.experiments.config import ExperimentConfig
from prm_app.experiments.dataset import (Attempt, DatasetItem, build_dataset, select_problems, waves,
                                          write_dataset_view)
from prm_app.experiments.insertion import branch_items
from prm_app.experiments.resources import Resources
from prm_fire.journal import read_journal


def run_chain(config: ExperimentConfig, *, resources: Resources | None = None, progress: bool = True) -> list[DatasetItem]:
    """Stages 1 and 2 for every problem of the config's subset, wave by wave (resuming).

    The progress bar counts problems and estimates the remaining time; returns the kept items. With
    ``config.executor.kind == "ray"`` the engines run on a Ray actor pool instead (:mod:`.ray_chain`).
    """
    if config.executor.kind == "ray":
        from prm_app.experiments.ray_chain import run_chain_ray

        return run_chain_ray(config, progress=progress)
    resources = resources or Resources(config)
    problems = select_problems(config.data)
    chosen = {p.id for p in problems}
    items = write_dataset_view(config)  # a stop may have come between an attempt and the view's rewrite
    # Kept items of earlier runs whose branch sets a stop cut short (one call per wave of them).
    for wave in waves([i for i in items if i.problem.id in chosen], config.wave_size):
        branch_items(config, wave, resources=resources)
    tried = {a.problem_id for a in read_journal(config.run_dir / "attempts.jsonl", Attempt)}
    todo = [p for p in problems if p.id not in tried]
    with tqdm(total=len(problems), initial=len(problems) - len(todo), desc="problems", unit="problem",
              disable=not progress) as bar:
        for wave in waves(todo, config.wave_size):
            items = build_dataset(config, problems=wave, resources=resources, progress=False)  # every kept item
            ids = {p.id for p in wave}
            branch_items(config, [i for i in items if i.problem.id in ids], resources=resources)
            bar.update(len(wave))
            bar.set_postfix(kept=sum(i.problem.id in chosen for i in items))
    return [i for i in items if i.problem.id in chosen]
