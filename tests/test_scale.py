"""The executor choice and the Ray actor pool (prm_fire/scale, prm_app/experiments/ray_chain.py).

The tests marked ``ray`` start a local Ray cluster of 2 CPUs (2 actors, one smollm2-135m engine
each) and compare its runs with local runs of the same config; ``.ci/ray.sh`` installs the extra and
runs them.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from prm_app.experiments.config import load_config
from prm_fire.scale.executor import ExecutorSpec, plan_actors

RAY = ExecutorSpec(kind="ray", actors=2, local_cpus=2, object_store_mb=500)


def _config_file(tmp_path: Path, shared_data: Path) -> Path:
    """test_experiments' tiny config: smollm2-135m on HF, rollout PRM on it, n=3, short outputs."""
    from test_experiments import _tiny_config  # tests/ is on sys.path under pytest

    return _tiny_config(tmp_path, shared_data, "wave_size = 1")


def _config(tmp_path: Path, shared_data: Path, **overrides):
    """The tiny config on six real GSM8K train problems, one per wave."""
    data = {"path": str(shared_data / "gsm8k" / "train.jsonl"), "limit": 6, "seed": 3}
    return load_config(_config_file(tmp_path, shared_data), data=data, **overrides)


def test_executor_in_a_config_as_a_word_or_a_table(tmp_path, shared_data):
    path = _config_file(tmp_path, shared_data)
    assert load_config(path).executor.kind == "local"
    assert load_config(path, executor="ray").executor == ExecutorSpec(kind="ray")
    spec = load_config(path, executor={"kind": "ray", "address": "auto", "num_gpus": 2}).executor
    assert (spec.address, spec.num_gpus) == ("auto", 2)
    with pytest.raises(ValueError, match=r"executor: .*executor fields address need kind 'ray'"):
        load_config(path, executor={"address": "auto"})
    with pytest.raises(ValueError, match=r"executor.kind: Input should be 'local' or 'ray'"):
        load_config(path, executor="dask")


def test_actor_plan_names_what_one_actor_needs():
    with pytest.raises(ValueError, match=r"one actor needs 1 CPU and 2 GPU, the cluster has 8 CPU and 1 GPU"):
        plan_actors(ExecutorSpec(kind="ray"), {"CPU": 8.0, "GPU": 1.0}, backend_options={"tensor_parallel_size": 2},
                    batches=4)
    plan = plan_actors(ExecutorSpec(kind="ray", num_cpus=4, num_gpus=1), {"CPU": 16.0, "GPU": 8.0},
                       backend_options={}, batches=100)
    assert (plan.actors, plan.num_cpus, plan.num_gpus) == (4, 4.0, 1.0)


def test_cli_ray_flag_sets_the_executor_and_refuses_single_stages(tmp_path, shared_data, capsys):
    import argparse

    from prm_app.cli import main
    from prm_app.cli.table5 import _config as cli_config
    from prm_app.cli.table5 import add_parser

    path = _config_file(tmp_path, shared_data)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    spec = cli_config(parser.parse_args(["table5", "--config", str(path), "--ray", "--actors", "3"])).executor
    assert (spec.kind, spec.address, spec.actors) == ("ray", None, 3)
    assert cli_config(parser.parse_args(["table5", "--config", str(path), "--ray", "auto"])).executor.address == "auto"
    assert cli_config(parser.parse_args(["table5", "--config", str(path)])).executor.kind == "local"
    assert main(["table5", "--config", str(path), "--ray", "--stage", "dataset"]) == 2
    assert "--ray: the Ray executor runs the whole chain" in capsys.readouterr().err
    assert not (tmp_path / "tiny").exists()


# --- on a local Ray cluster -------------------------------------------------------------------------

def _records(run: Path) -> dict[str, list[dict]]:
    """Every journal of a run without wall times, and every tree, by file name."""
    out: dict[str, list[dict]] = {}
    for path in sorted(run.glob("*.jsonl")) + sorted(run.glob("insertion/*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        out[str(path.relative_to(run))] = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    for path in sorted(run.glob("trees/*.json")):
        out[str(path.relative_to(run))] = [json.loads(path.read_text())]
    return out


def _table(config) -> dict:
    """The Table 5 aggregate without the run's place, executor and wall times."""
    from prm_app.experiments.table import write_table5

    table = json.loads(write_table5(config).model_dump_json())
    for wall in ("seconds", "tokens_per_second", "seconds_per_kept_item"):
        table["stats"].pop(wall)
    table.pop("config")
    return table


def _actor_pids(name: str) -> list[int]:
    """Processes of this test's own Ray cluster (children of this process) running actor ``name``."""
    import psutil

    return [p.pid for p in psutil.Process().children(recursive=True)
            if any(name in part for part in _cmdline(p))]


def _cmdline(process) -> list[str]:
    import psutil

    try:
        return process.cmdline()
    except psutil.Error:
        return []


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, shared_data):
    """The local chain on the six problems: its config, records and table."""
    from prm_app.experiments.chain import run_chain

    tmp = tmp_path_factory.mktemp("local")
    config = _config(tmp, shared_data)
    run_chain(config, progress=False)
    records = _records(config.run_dir)
    assert any(a["kept"] for a in records["attempts.jsonl"]), "the seeded subset should keep items"
    return config, records, _table(config)


@pytest.mark.ray
def test_ray_chain_equals_local_and_a_killed_actor_loses_nothing(tmp_path, shared_data, local_run):
    """2 actors on a 2-CPU local cluster; one actor is SIGKILLed after the first problem is recorded.
    Ray Data restarts it and retries its batch: the recorded lines stay as they were, none is written
    twice, and the journals, trees and table equal the local run's. A rerun finds nothing to do."""
    from prm_app.experiments.chain import run_chain

    _, local_records, local_table = local_run
    config = _config(tmp_path, shared_data, executor=RAY.model_dump())
    attempts = config.run_dir / "attempts.jsonl"
    seen: dict[str, object] = {}

    def kill_one_actor() -> None:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and "done" not in seen:
            if attempts.exists() and attempts.read_text().count("\n") >= 1:
                pids = _actor_pids("ChainWorker")
                if pids:
                    seen["before"] = {str(p.relative_to(config.run_dir)): p.read_text()
                                      for p in config.run_dir.rglob("*.jsonl")}
                    os.kill(pids[0], signal.SIGKILL)
                    seen["killed"] = pids[0]
                    return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_one_actor, daemon=True)
    killer.start()
    try:
        run_chain(config, progress=False)
    finally:
        seen["done"] = True
        killer.join()
    assert "killed" in seen, "no actor was running after the first record"
    lines_before = json.loads(json.dumps(seen["before"]))
    assert lines_before["attempts.jsonl"].count("\n") < 6, "the kill came after the last problem"
    for name, text in lines_before.items():  # what was recorded before the kill is still there, unchanged
        assert (config.run_dir / name).read_text().startswith(text), name
    assert _records(config.run_dir) == local_records
    assert _table(config) == local_table
    run_chain(config, progress=False)  # the rerun: everything recorded, no cluster work
    assert _records(config.run_dir) == local_records


@pytest.mark.ray
def test_ray_chain_stopped_in_the_driver_resumes_to_the_local_records(tmp_path, shared_data, local_run, monkeypatch):
    """The driver dies between two of its writes (after an attempt line, before that item's insertion
    lines): the rerun sends the kept item back for its missing sets only and equals the local run."""
    import prm_app.experiments.ray_chain as ray_chain
    from prm_app.experiments.chain import run_chain

    _, local_records, _ = local_run
    config = _config(tmp_path, shared_data, executor=RAY.model_dump())
    kept = next(i for i, a in enumerate(local_records["attempts.jsonl"]) if a["kept"])
    real_append, appended = ray_chain.append_journal, []

    class Killed(Exception):
        pass

    def dies_inside_a_kept_item(path, record):
        appended.append(path.name)
        if appended.count("attempts.jsonl") == kept + 1 and path.name != "attempts.jsonl":
            raise Killed()  # the kept item's attempt is written, its first insertion line is not
        real_append(path, record)

    monkeypatch.setattr(ray_chain, "append_journal", dies_inside_a_kept_item)
    with pytest.raises(Killed):
        run_chain(config, progress=False)
    monkeypatch.setattr(ray_chain, "append_journal", real_append)
    stopped = _records(config.run_dir)
    assert len(stopped["attempts.jsonl"]) == kept + 1 and stopped["attempts.jsonl"][-1]["kept"]
    run_chain(config, progress=False)
    assert _records(config.run_dir) == local_records


@pytest.mark.ray
def test_branch_many_on_ray_equals_branch_many(shared_data):
    """Six jobs (3 GSM8K cuts x 2 methods), 2 per engine call on 2 actors, equal the local call's sets."""
    from prm_fire.branching import BranchJob, branch_many
    from prm_fire.generators import make_generator
    from prm_fire.prefixes import build_prefix
    from prm_fire.problems import load_problems
    from prm_fire.sampling import SamplingConfig
    from prm_fire.scale import branch_many_ray

    problems = [p for p in load_problems(shared_data / "gsm8k" / "test.jsonl", limit=20)
                if len(p.solution.splitlines()) >= 3][:3]
    jobs = [BranchJob(problem=p, prefix=build_prefix(p.solution, "line2", problem_id=p.id), n=3,
                      sampling=SamplingConfig(method=m, seed=k, max_new_tokens=16))
            for k, p in enumerate(problems) for m in ("fire", "regular")]
    local = branch_many(jobs, generator=make_generator("hf", "smollm2-135m"))
    remote = branch_many_ray(jobs, backend="hf", model="smollm2-135m", executor=RAY, batch_size=2)
    assert [s.model_dump() for s in remote] == [s.model_dump() for s in local]
