"""The batched branching API on a Ray cluster: :func:`branch_many_ray`.

Each actor of the pool builds its own engine (``make_generator(backend, model, **backend_options)``)
once and serves batches of jobs with :func:`prm_fire.branching.branch_many`, the engine's batched
request call. A job's branch seeds derive from its own ``sampling.seed`` and the branch index, never
from the actor or batch that ran it, so every set equals the one a local ``branch_many`` returns.
"""

from __future__ import annotations

from typing import Any

from prm_fire.branching import BranchJob, BranchSet, branch_many
from prm_fire.scale.executor import ExecutorSpec, run_pool


class BranchWorker:
    """One Ray actor: one engine, called on batches of jobs (JSON rows) and returning JSON branch sets."""

    def __init__(self, backend: str, model: str, backend_options: dict[str, Any]):
        from prm_fire.generators import make_generator

        self.generator = make_generator(backend, model, **backend_options)

    def __call__(self, batch: Any) -> Any:
        jobs = [BranchJob.model_validate_json(text) for text in batch["job"]]
        sets = branch_many(jobs, generator=self.generator)
        return batch.assign(set=[s.model_dump_json() for s in sets]).drop(columns=["job"])

    def __del__(self) -> None:  # Ray Data calls it when the pool shuts down: stop vLLM's workers
        close = getattr(getattr(self, "generator", None), "close", None)
        if close is not None:
            close()


def branch_many_ray(
    jobs: list[BranchJob],
    *,
    backend: str,
    model: str,
    backend_options: dict[str, Any] | None = None,
    executor: ExecutorSpec | None = None,
    batch_size: int = 8,
) -> list[BranchSet]:
    """Grow and grade every job's branch set on a Ray actor pool, ``batch_size`` jobs per engine call.

    ``executor`` defaults to a local cluster started for the call; give ``ExecutorSpec(kind="ray",
    address="auto")`` to use a running one. Returns the sets in job order, each equal to what
    ``branch_many(jobs, generator=make_generator(backend, model, **backend_options))`` returns for it.
    """
    spec = executor or ExecutorSpec(kind="ray")
    if spec.kind != "ray":
        raise ValueError(f"branch_many_ray needs an executor of kind 'ray', got {spec.kind!r} (use branch_many)")
    options = backend_options or {}
    rows = [{"index": str(i), "job": job.model_dump_json()} for i, job in enumerate(jobs)]
    out = list(run_pool(rows, BranchWorker, {"backend": backend, "model": model, "backend_options": options},
                        spec=spec, batch_size=batch_size, backend_options=options))
    if [int(r["index"]) for r in out] != list(range(len(jobs))):
        raise RuntimeError(f"the Ray pool returned {len(out)} of {len(jobs)} branch sets, or out of order")
    return [BranchSet.model_validate_json(r["set"]) for r in out]
