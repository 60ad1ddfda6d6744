"""Table 5 chain cost: the old order (one branch set per engine call) vs waves, on the same problems.

Both arms run the chain of one config (default ``cpu-small``) on its first ``--limit`` problems, each
into its own scratch folder, on ONE loaded generator (engine start excluded from both):

* ``sequential``: ``wave_size = 1`` and every engine call carries a single request -- what the chain
  did before waves (one base response, one rollout prefix, one branch set of n per call);
* ``waves``: ``wave_size = --wave-size``, every request of a wave's phase in one call.

The arms alternate (sequential, waves, sequential, ...) for ``--repeats`` rounds, each round in fresh
folders. Reported per arm (medians over rounds): wall time, kept items, wall time per kept item, and
the whole chain's tokens/s (base-response, PRM and branch tokens from the journals, over wall time);
then the ratios, and whether both arms wrote the same records. Prints a table, writes JSON.

Usage (vLLM config: run with the vLLM venv's python)::

    ~/.cache/prm-fire/venv-vllm/bin/python benchmarks/table5_waves.py --config cpu-small --limit 12
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


class OneRequestPerCall:
    """A generator whose ``branch_many`` sends one request per engine call: the pre-wave chain."""

    def __init__(self, inner):
        self.inner = inner
        self.model_name = inner.model_name

    def encode(self, messages, prefix):
        return self.inner.encode(messages, prefix)

    def branch(self, messages, prefix, n, sampling):
        return self.inner.branch(messages, prefix, n, sampling)

    def branch_many(self, requests):
        return [self.inner.branch_many([r])[0] for r in requests]


def journals(run: Path) -> dict[str, list[dict]]:
    """Every journal record of a run without its wall times."""
    out = {}
    for path in sorted(run.glob("*.jsonl")) + sorted(run.glob("insertion/*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        out[str(path.relative_to(run))] = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    return out


def compare(a: dict[str, list[dict]], b: dict[str, list[dict]]) -> dict[str, dict]:
    """Per journal: records in each arm, how many are equal position by position, and the first that
    differs with its differing fields (vLLM may round a row differently in a larger batch, so a
    near-tie draw can flip and a base response, hence which items are kept, can change)."""
    out = {}
    for name in sorted(set(a) | set(b)):
        xs, ys = a.get(name, []), b.get(name, [])
        equal = sum(x == y for x, y in zip(xs, ys))
        first = next((i for i, (x, y) in enumerate(zip(xs, ys)) if x != y), None)
        fields = sorted(k for k in set(xs[first]) | set(ys[first]) if xs[first].get(k) != ys[first].get(k)) \
            if first is not None else []
        out[name] = {"records": [len(xs), len(ys)], "equal": equal, "first_difference": first, "fields": fields}
    return out


def tokens(records: dict[str, list[dict]]) -> dict[str, int]:
    attempts = records.get("attempts.jsonl", [])
    branch = sum(r["tokens"] for name, rows in records.items() if name.startswith("insertion/") for r in rows)
    return {"base": sum(a["tokens"] for a in attempts), "prm": sum(a["prm_tokens"] or 0 for a in attempts),
            "branch": branch}


def run_arm(config, generator, arm: str, wave_size: int, folder: Path) -> dict:
    from prm_app.experiments.chain import run_chain
    from prm_app.experiments.resources import Resources

    cfg = config.model_copy(update={"out_dir": str(folder), "wave_size": 1 if arm == "sequential" else wave_size})
    gen = OneRequestPerCall(generator) if arm == "sequential" else generator
    start = time.perf_counter()
    kept = run_chain(cfg, resources=Resources(cfg, generator=gen), progress=False)
    wall = time.perf_counter() - start
    records = journals(cfg.run_dir)
    tok = tokens(records)
    total = sum(tok.values())
    return {"arm": arm, "wall_s": round(wall, 1), "kept": len(kept), "problems": len(records["attempts.jsonl"]),
            "s_per_kept": round(wall / len(kept), 1) if kept else None, "tokens": tok,
            "tok_per_s": round(total / wall, 1), "records": records}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="cpu-small")
    parser.add_argument("--limit", type=int, default=12, help="first N problems of the config's subset")
    parser.add_argument("--wave-size", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of (sequential, waves)")
    parser.add_argument("--out", default=str(RESULTS / "table5_waves.json"))
    args = parser.parse_args()

    from prm_app.experiments.config import load_config
    from prm_app.experiments.resources import Resources

    config = load_config(args.config)
    config = config.model_copy(update={"data": config.data.model_copy(update={"limit": args.limit})})
    started = time.perf_counter()
    generator = Resources(config, journal_calls=False).generator  # each arm's run journals its own calls
    load_s = time.perf_counter() - started
    rounds = []
    for r in range(args.repeats):
        for arm in ("sequential", "waves"):
            folder = Path(tempfile.mkdtemp(prefix=f"table5-{arm}-"))
            try:
                rounds.append(run_arm(config, generator, arm, args.wave_size, folder) | {"round": r})
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            last = rounds[-1]
            print(f"round {r} {arm}: {last['wall_s']} s, {last['kept']} kept, {last['tok_per_s']} tok/s", flush=True)
    by_arm = {arm: [x for x in rounds if x["arm"] == arm] for arm in ("sequential", "waves")}
    summary = {}
    for arm, xs in by_arm.items():
        summary[arm] = {
            "wall_s": statistics.median(x["wall_s"] for x in xs),
            "kept": xs[0]["kept"], "problems": xs[0]["problems"],
            "s_per_kept": statistics.median(x["s_per_kept"] for x in xs) if xs[0]["kept"] else None,
            "tok_per_s": statistics.median(x["tok_per_s"] for x in xs), "tokens": xs[0]["tokens"],
        }
    same = all(x["records"] == by_arm["sequential"][0]["records"] for x in rounds)
    diff = compare(by_arm["sequential"][0]["records"], by_arm["waves"][0]["records"])
    seq, wav = summary["sequential"], summary["waves"]
    ratios = {"wall_time": round(seq["wall_s"] / wav["wall_s"], 2),
              "s_per_kept": round(seq["s_per_kept"] / wav["s_per_kept"], 2) if seq["kept"] and wav["kept"] else None,
              "tok_per_s": round(wav["tok_per_s"] / seq["tok_per_s"], 2)}
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\n### Table 5 chain, {config.name} ({config.model}, {config.backend}), first {args.limit} problems, "
          f"waves of {args.wave_size}, {args.repeats} round(s); engine load {load_s:.0f} s excluded\n")
    print("| arm | wall s | problems | kept | s per kept item | chain tok/s | tokens base / PRM / branch |")
    print("|---|---|---|---|---|---|---|")
    for arm, s in summary.items():
        t = s["tokens"]
        print(f"| {arm} | {s['wall_s']:.0f} | {s['problems']} | {s['kept']} | {s['s_per_kept'] or '-'} "
              f"| {s['tok_per_s']:.1f} | {t['base']} / {t['prm']} / {t['branch']} |")
    print(f"\nwaves vs sequential: {ratios['wall_time']}x less wall time, {ratios['s_per_kept']}x less per kept "
          f"item (target >= 3x), {ratios['tok_per_s']}x tokens/s; same records: {same}; machine: {load}")
    for name, d in diff.items():
        print(f"  {name}: {d['equal']} of {d['records']} records equal"
              + (f"; first difference at record {d['first_difference']} ({', '.join(d['fields'])})"
                 if d["first_difference"] is not None else ""))
    out = {"config": config.name, "model": config.model, "backend": config.backend, "limit": args.limit,
           "wave_size": args.wave_size, "repeats": args.repeats, "engine_load_s": round(load_s, 1),
           "summary": summary, "ratios": ratios, "same_records": same, "record_comparison": diff, "uptime": load,
           "rounds": [{k: v for k, v in x.items() if k != "records"} for x in rounds]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"written: {args.out}")
    if hasattr(generator, "close"):
        generator.close()
    return 0


if __name__ == "__main__":  # vLLM spawns workers: keep the guard
    sys.exit(main())
