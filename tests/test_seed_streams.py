"""Seed streams of the Table 5 chain (issue 23): a branch set never replays the base response.

Before streams had purposes, the base response and every insertion point's branch sets of an item drew
from one seed, so regular branch 0 at line 1 (the same prompt, the same sampler) was the base response
itself. These tests run the real chain's seed functions on smollm2 (HF) and a real GSM8K problem.
"""

from __future__ import annotations

import pytest

from prm_fire.branching import BranchJob, branch_many
from prm_app.experiments.config import InsertionSpec
from prm_app.experiments.dataset import base_seed
from prm_app.experiments.insertion import insertion_seed
from prm_fire.prefixes import Prefix
from prm_fire.problems import load_problems
from prm_fire.sampling import SamplingConfig, stream_seed

POINTS = ["line1", "line2", "line3", "prm", "entropy", "oracle", "reference"]


@pytest.fixture(scope="module")
def smollm2():
    from prm_fire.generators import make_generator

    return make_generator("hf", "smollm2-135m")


def test_every_purpose_has_its_own_stream_for_every_item(shared_data):
    ids = [p.id for p in load_problems(shared_data / "gsm8k" / "train.jsonl")[:500]]
    seeds = [base_seed(0, i) for i in ids] + [insertion_seed(0, i, p) for i in ids for p in POINTS]
    seeds += [stream_seed(0, i, f"rollout/{k}") for i in ids for k in range(3)]
    assert len(set(seeds)) == len(seeds)


def test_a_line1_regular_branch_is_never_the_base_response(shared_data, smollm2):
    problem = load_problems(shared_data / "gsm8k" / "train.jsonl")[3]
    settings = SamplingConfig(method="regular", temperature=0.7, max_new_tokens=24)
    spec = InsertionSpec(sampling=settings, n=4, ks=[1, 4])
    line1 = Prefix(point="line1", text="", kept_steps=0, step_mode="line")  # the 1st-line cut keeps nothing
    base_job = BranchJob(problem=problem, prefix=line1, n=1,
                         sampling=settings.model_copy(update={"seed": base_seed(0, problem.id)}))
    branches_job = BranchJob(problem=problem, prefix=line1, n=spec.n,
                             sampling=spec.sampling_for("regular", insertion_seed(0, problem.id, "line1")))
    # What the chain did before streams had purposes: the branch set seeded like the base response.
    shared_job = branches_job.model_copy(update={"sampling": base_job.sampling})
    base, branches, shared = branch_many([base_job, branches_job, shared_job], generator=smollm2)
    text = base.branches[0].text
    assert shared.branches[0].text == text  # one seed, one prompt: branch 0 replays the base response
    assert all(b.text != text for b in branches.branches)
