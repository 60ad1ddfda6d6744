"""What the Ray executor costs: the same small Table 5 chain locally and on a 2-worker local Ray cluster.

Both arms run the chain from an empty folder on the same problems (GSM8K train, smollm2-135m on the HF
backend, rollout PRM on the same model, n = 3 branches per set, short outputs), so their records must
be equal. Timed from the call to the end, everything included:

* ``local``: one process loads the engine and runs the waves one after the other;
* ``ray``: ``ray.init`` starts a local cluster (``--cpus`` CPUs, 500 MiB object store), a Ray Data
  pool of 2 actors (1 CPU each) loads one engine per actor, the driver writes what they return.

Besides the wall times: the engine load of the local arm, the start and stop of an idle cluster (so
the overhead splits into cluster start, second engine load, and the rest), and the compute the
journals record (the sum of their ``seconds``). Arms alternate for ``--repeats`` rounds; medians are
reported. On 2 cores no speed-up is expected: the two actors share the cores the local run has alone.
Prints a table, writes JSON.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/ray_overhead.py --limit 6 --wave-size 3 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from table5_waves import journals, tokens  # noqa: E402  (the records and token totals of a run)


def small_config(folder: Path, limit: int, wave_size: int, data: str):
    """The shipped cpu-small config cut down to smollm2-135m on HF with short outputs, into ``folder``."""
    from prm_app.experiments.config import load_config

    base = load_config("cpu-small")
    insertion = base.insertion.model_dump() | {
        "points": ["line1", "line2", "prm"], "n": 3, "ks": [1, 3],
        "sampling": base.insertion.sampling.model_dump() | {"max_new_tokens": 12}}
    return load_config(
        "cpu-small", out_dir=str(folder), model="smollm2-135m", backend="hf", backend_options={}, wave_size=wave_size,
        data=base.data.model_dump() | {"path": data, "limit": limit, "seed": 3},
        base_sampling=base.base_sampling.model_dump() | {"max_new_tokens": 96},
        prm={"name": "rollout", "options": {"model": "smollm2-135m", "m": 1, "mode": "binary", "max_new_tokens": 16}},
        filter={"require_wrong_answer": False, "min_first_error_step": 0, "require_first_error": True},
        insertion=insertion)


def run_arm(arm: str, args: argparse.Namespace) -> dict:
    from prm_app.experiments.chain import run_chain
    from prm_app.experiments.resources import Resources
    from prm_fire.scale import ExecutorSpec

    folder = Path(tempfile.mkdtemp(prefix=f"ray-overhead-{arm}-"))
    try:
        config = small_config(folder, args.limit, args.wave_size, args.data)
        out: dict = {"arm": arm}
        start = time.perf_counter()
        if arm == "ray":
            spec = ExecutorSpec(kind="ray", actors=2, local_cpus=args.cpus, object_store_mb=500)
            kept = run_chain(config.model_copy(update={"executor": spec}), progress=False)
        else:
            resources = Resources(config)
            _ = resources.generator
            out["engine_load_s"] = round(time.perf_counter() - start, 1)
            kept = run_chain(config, resources=resources, progress=False)
        out["wall_s"] = round(time.perf_counter() - start, 1)
        records = journals(config.run_dir)
        out |= {"kept": len(kept), "problems": len(records["attempts.jsonl"]), "tokens": tokens(records),
                "journal_s": round(sum(r.get("seconds", 0) for rows in _raw(config.run_dir) for r in rows), 1),
                "records": records}
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _raw(run: Path) -> list[list[dict]]:
    return [[json.loads(line) for line in p.read_text().splitlines() if line.strip()]
            for p in [run / "attempts.jsonl", *sorted(run.glob("insertion/*.jsonl"))]]


def idle_cluster_s(cpus: int) -> float:
    """Start and stop of an idle local cluster like the ray arm's."""
    from prm_fire.scale import ExecutorSpec, ray_cluster

    start = time.perf_counter()
    with ray_cluster(ExecutorSpec(kind="ray", local_cpus=cpus, object_store_mb=500)):
        pass
    return round(time.perf_counter() - start, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=6, help="GSM8K train problems (seeded subset)")
    parser.add_argument("--wave-size", type=int, default=3, help="problems per wave / per actor batch")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of (local, ray)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "gsm8k" / "train.jsonl"))
    parser.add_argument("--out", default=str(RESULTS / "ray_overhead.json"))
    args = parser.parse_args()

    rounds = []
    for r in range(args.repeats):
        for arm in ("local", "ray"):
            rounds.append(run_arm(arm, args) | {"round": r})
            print(f"round {r} {arm}: {rounds[-1]['wall_s']} s, {rounds[-1]['kept']} kept", flush=True)
        rounds.append({"arm": "idle cluster", "wall_s": idle_cluster_s(args.cpus), "round": r})
        print(f"round {r} idle cluster start+stop: {rounds[-1]['wall_s']} s", flush=True)
    by_arm = {arm: [x for x in rounds if x["arm"] == arm] for arm in ("local", "ray", "idle cluster")}
    med = lambda arm, key: statistics.median(x[key] for x in by_arm[arm])  # noqa: E731
    local, ray_ = by_arm["local"][0], by_arm["ray"][0]
    same = all(x["records"] == local["records"] for x in by_arm["local"] + by_arm["ray"])
    summary = {
        "local_wall_s": med("local", "wall_s"), "ray_wall_s": med("ray", "wall_s"),
        "local_engine_load_s": med("local", "engine_load_s"), "idle_cluster_s": med("idle cluster", "wall_s"),
        "local_journal_s": med("local", "journal_s"), "ray_journal_s": med("ray", "journal_s"),
    }
    summary["ray_overhead_s"] = round(summary["ray_wall_s"] - summary["local_wall_s"], 1)
    summary["ray_over_local"] = round(summary["ray_wall_s"] / summary["local_wall_s"], 2)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    t = local["tokens"]
    print(f"\n### Small Table 5 chain, local vs a {args.cpus}-CPU local Ray cluster (2 actors): smollm2-135m (hf), "
          f"{local['problems']} GSM8K problems, waves of {args.wave_size}, {local['kept']} kept, tokens base / PRM / "
          f"branch {t['base']} / {t['prm']} / {t['branch']}; medians of {args.repeats} rounds\n")
    print("| arm | wall s | engine load s | idle cluster start+stop s | compute in journals s |")
    print("|---|---|---|---|---|")
    print(f"| local | {summary['local_wall_s']} | {summary['local_engine_load_s']} | - | {summary['local_journal_s']} |")
    print(f"| ray (2 actors) | {summary['ray_wall_s']} | (in actors) | {summary['idle_cluster_s']} | "
          f"{summary['ray_journal_s']} |")
    print(f"\nray - local: {summary['ray_overhead_s']:+} s ({summary['ray_over_local']}x); same records in every run: "
          f"{same}; machine: {load}")
    out = {"limit": args.limit, "wave_size": args.wave_size, "repeats": args.repeats, "cpus": args.cpus,
           "kept": local["kept"], "problems": local["problems"], "tokens": t, "summary": summary, "same_records": same,
           "uptime": load, "rounds": [{k: v for k, v in x.items() if k != "records"} for x in rounds]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
