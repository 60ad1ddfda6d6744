"""The whole Table 5 chain, problem by problem: base response, PRM, filter, then every insertion.

Running stage 1 over all problems before stage 2 leaves, when a long run is stopped, a data set with
no branches yet, or the first insertion points done and the last ones empty. Here each problem goes
through both stages before the next one starts, so at any stop every finished item has all its
(point, method) cells and the table compares the same items everywhere. The journals and seeds are
the stages' own, so the results equal those of running the stages one after the other.
"""

from __future__ import annotations

from tqdm.auto import tqdm

from prm_fire.experiments.config import ExperimentConfig
from prm_fire.experiments.dataset import DatasetItem, build_dataset, make_scorer, select_problems
from prm_fire.experiments.insertion import run_insertion
from prm_fire.generators import Generator, make_generator


def run_chain(
    config: ExperimentConfig, *, generator: Generator | None = None, progress: bool = True
) -> list[DatasetItem]:
    """Stages 1 and 2 for every problem of the config's subset, one problem at a time (resuming).

    The progress bar counts problems and estimates the remaining time; returns the kept items.
    """
    generator = generator or make_generator(config.backend, config.model, **config.backend_options)
    scorer = None
    kept: list[DatasetItem] = []
    bar = tqdm(select_problems(config.data), desc="problems", unit="problem", disable=not progress)
    for problem in bar:
        scorer = scorer or make_scorer(config, generator)
        items = build_dataset(config, problems=[problem], generator=generator, scorer=scorer, progress=False)
        mine = [item for item in items if item.problem.id == problem.id]
        for point in config.insertion.points:
            run_insertion(config, point, items=mine, generator=generator, progress=False)
        kept += mine
        bar.set_postfix(kept=len(kept))
    return kept
