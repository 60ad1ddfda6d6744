"""The executor choice: run in this process (``local``) or on a Ray cluster (``ray``).

``ray`` with no ``address`` starts a local cluster for the run and stops it after; ``address = "auto"``
joins the cluster ``ray start`` made on this node; ``"host:6379"`` or ``"ray://host:10001"`` join a
remote one. Work goes to a Ray Data actor pool, one engine per actor; each actor declares the CPUs
and GPUs it holds (:func:`plan_actors`). Ray is imported only here, and only when a ``ray`` executor
runs.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RAY_INSTALL = "pip install 'prm-fire[ray]' (Ray 2.60 with Ray Data)"


class ExecutorSpec(BaseModel):
    """Where the engines run. In a TOML config: ``executor = "ray"``, or an ``[executor]`` table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["local", "ray"] = Field(default="local", description="local: this process; ray: a Ray actor pool.")
    address: str | None = Field(
        default=None, description="Ray only. None: start a local cluster for the run; 'auto': join the running "
                                  "cluster of this node; 'host:6379' or 'ray://host:10001': join that one.")
    actors: int | None = Field(default=None, ge=1,
                               description="Engines (one per actor); None: as many as the cluster's CPUs/GPUs hold.")
    num_cpus: float = Field(default=1, gt=0, description="CPUs each actor holds (its torch threads).")
    num_gpus: float | None = Field(
        default=None, ge=0, description="GPUs each actor holds; None: the backend's tensor_parallel_size (1 if not "
                                        "set) when the cluster has GPUs, else 0.")
    local_cpus: int | None = Field(default=None, ge=1, description="CPUs of a cluster started here; None: all cores.")
    object_store_mb: int | None = Field(default=None, ge=100,
                                        description="Object store of a cluster started here (MiB); None: Ray's default.")

    @model_validator(mode="before")
    @classmethod
    def _from_kind(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _ray_fields_need_ray(self) -> ExecutorSpec:
        if self.kind == "local":
            set_ray = [name for name, field in type(self).model_fields.items()
                       if name != "kind" and getattr(self, name) != field.default]
            if set_ray:
                raise ValueError(f"executor fields {', '.join(set_ray)} need kind 'ray' (executor = \"ray\")")
        return self


class ActorPlan(BaseModel):
    """How many actors a run starts and what each one holds."""

    model_config = ConfigDict(frozen=True)

    actors: int
    num_cpus: float
    num_gpus: float


def plan_actors(spec: ExecutorSpec, cluster: dict[str, float], *, backend_options: dict[str, Any], batches: int) -> ActorPlan:
    """Actors and resources per actor for ``spec`` on a cluster with ``cluster`` resources ("CPU", "GPU").

    GPUs per actor default to the engine's tensor parallel size when the cluster has GPUs. The count is
    ``spec.actors`` or what the cluster holds, never more than the ``batches`` of work.

    >>> plan_actors(ExecutorSpec(kind="ray"), {"CPU": 2.0}, backend_options={}, batches=5)
    ActorPlan(actors=2, num_cpus=1.0, num_gpus=0.0)
    >>> plan_actors(ExecutorSpec(kind="ray"), {"CPU": 64.0, "GPU": 8.0}, backend_options={"tensor_parallel_size": 2},
    ...             batches=100)
    ActorPlan(actors=4, num_cpus=1.0, num_gpus=2.0)
    >>> plan_actors(ExecutorSpec(kind="ray", actors=3), {"CPU": 8.0}, backend_options={}, batches=2).actors
    2
    """
    gpus = spec.num_gpus
    if gpus is None:
        gpus = float(backend_options.get("tensor_parallel_size", 1)) if cluster.get("GPU", 0) > 0 else 0.0
    if spec.actors is not None:
        count = spec.actors
    else:
        fits = [cluster.get("CPU", 0) // spec.num_cpus] + ([cluster.get("GPU", 0) // gpus] if gpus else [])
        count = int(min(fits))
        if count < 1:
            need = f"{spec.num_cpus:g} CPU" + (f" and {gpus:g} GPU" if gpus else "")
            raise ValueError(f"executor: one actor needs {need}, the cluster has {cluster.get('CPU', 0):g} CPU and "
                             f"{cluster.get('GPU', 0):g} GPU")
    return ActorPlan(actors=max(1, min(count, batches)), num_cpus=float(spec.num_cpus), num_gpus=float(gpus))


def check_ray_installed(where: str = "executor") -> None:
    """Raise ImportError naming the install command if Ray (with Ray Data) is missing; imports nothing."""
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("pandas") is None:
        raise ImportError(f"{where}: kind 'ray' needs Ray: {RAY_INSTALL}")


@contextmanager
def ray_cluster(spec: ExecutorSpec) -> Iterator[dict[str, float]]:
    """Connect to the cluster ``spec`` names (or start a local one), yield its resources, and disconnect.

    A session the caller already opened with ``ray.init`` is used as it is and left open.
    """
    check_ray_installed()
    import ray

    if ray.is_initialized():
        yield ray.cluster_resources()
        return
    if spec.address is not None:
        ray.init(address=spec.address, log_to_driver=False)
    else:
        memory = spec.object_store_mb * 2**20 if spec.object_store_mb else None
        ray.init(num_cpus=spec.local_cpus, object_store_memory=memory, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.cluster_resources()
    finally:
        ray.shutdown()


def run_pool(rows: list[dict[str, str]], worker: type, worker_kwargs: dict[str, Any], *, spec: ExecutorSpec,
             batch_size: int, backend_options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Send ``rows`` through a Ray Data actor pool of ``worker`` and yield its output rows in input order.

    Each actor is ``worker(**worker_kwargs)`` (it builds its engine once) and is called on batches of
    up to ``batch_size`` rows (a pandas DataFrame; it returns one of equal length). The pool has a fixed
    number of actors (:func:`plan_actors`), each holding its CPUs and GPUs; Ray Data restarts a killed
    actor and retries the batch it held. Rows come back as each batch finishes, in input order, so a
    caller that writes them as they come has written a prefix of the work when it stops.
    """
    if not rows:
        return
    with ray_cluster(spec) as resources:
        import ray.data

        plan = plan_actors(spec, resources, backend_options=backend_options, batches=math.ceil(len(rows) / batch_size))
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        dataset = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / batch_size))
        dataset = dataset.map_batches(worker, fn_constructor_kwargs=worker_kwargs, batch_size=batch_size,
                                      concurrency=plan.actors, num_cpus=plan.num_cpus, num_gpus=plan.num_gpus or None,
                                      batch_format="pandas")
        yield from dataset.iter_rows()
