"""Running past one machine: the executor choice (local or a Ray cluster) and Ray actor pools.

Ray is optional (``pip install prm-fire[ray]``) and imported only when an executor of kind ``ray``
runs. :class:`ExecutorSpec` is the choice; :func:`branch_many_ray` is the batched branching API on a
cluster; the Table 5 chain on a cluster lives in :mod:`prm_app.experiments.ray_chain`.
"""

from prm_fire.scale.branching import branch_many_ray
from prm_fire.scale.executor import ExecutorSpec, ray_cluster

__all__ = ["ExecutorSpec", "branch_many_ray", "ray_cluster"]
