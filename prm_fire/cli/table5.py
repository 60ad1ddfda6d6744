"""``prm-fire table5``: the whole Table 5 chain for a config, or one stage of it.

Stages: ``dataset`` (base responses, PRM, filter), ``insertion`` (branching at each point),
``table`` (aggregate, markdown, JSON, PNG). ``all`` runs the first two in waves of problems
(:mod:`prm_fire.experiments.chain`), then the table. Every stage resumes from what it wrote.
``pass-rate`` (not part of ``all``) measures the policy's pass rate by MATH level, to choose the subset.
"""

from __future__ import annotations

import argparse
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``table5`` and its options."""
    p = sub.add_parser("table5", help="reproduce the FIRE paper's Table 5 for a config (resumable)")
    p.add_argument("--config", required=True, help="shipped config name (cpu-small, paper) or a .toml path")
    p.add_argument("--stage", choices=["all", "pass-rate", "dataset", "insertion", "table"], default="all")
    p.add_argument("--point", action="append", help="insertion point(s) for the insertion stage (default: config's)")
    p.add_argument("--method", choices=["regular", "fire", "both"], default="both")
    p.add_argument("--out-dir", help="override the config's out_dir")
    p.add_argument("--limit", type=int, help="override the config's number of problems")
    p.add_argument("--wave-size", type=int, help="override the config's wave_size (problems per generator call)")
    p.add_argument("--backend", help="override the config's backend (its backend options are dropped)")
    p.add_argument("--data", help="override the config's data file (e.g. to measure pass rates on another set)")
    p.add_argument("--levels", type=level_list, default=[1, 2, 3],
                   help="pass-rate stage: comma-separated MATH levels, or 'all' (one row, e.g. GSM8K)")
    p.add_argument("--per-level", type=int, default=10, help="pass-rate stage: problems per level")
    p.add_argument("--samples", type=int, default=4, help="pass-rate stage: responses per problem")


def level_list(text: str) -> list[int] | None:
    """``"1,2,3"`` -> ``[1, 2, 3]``; ``"all"`` -> None (data without levels, e.g. GSM8K)."""
    if text == "all":
        return None
    try:
        return [int(level) for level in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'all' or comma-separated integers like 1,2,3, got {text!r}") from None


def _config(args: argparse.Namespace):
    from prm_fire.experiments.config import load_config

    top = {"out_dir": args.out_dir} if args.out_dir else {}
    if args.wave_size is not None:
        top["wave_size"] = args.wave_size
    config = load_config(args.config, **top)
    if args.backend:
        config = config.model_copy(update={"backend": args.backend, "backend_options": {}})
    data = {"limit": args.limit} if args.limit else {}
    if args.data:  # levels/subjects belong to the config's data set, not to another one
        data |= {"path": args.data, "levels": None, "subjects": None}
    if data:
        config = config.model_copy(update={"data": config.data.model_copy(update=data)})
    return config


def run(args: argparse.Namespace) -> int:
    """Run the asked stages in order, sharing one set of loaded models (built only if needed)."""
    from prm_fire.experiments.chain import run_chain
    from prm_fire.experiments.dataset import build_dataset
    from prm_fire.experiments.insertion import run_insertion
    from prm_fire.experiments.resources import Resources
    from prm_fire.experiments.table import render_markdown, write_table5

    config = _config(args)
    print(f"config {config.name}: model {config.model} ({config.backend}), PRM {config.prm.name}, "
          f"waves of {config.wave_size} problems, outputs in {config.run_dir}")
    resources = Resources(config)
    start = time.perf_counter()
    try:
        if args.stage == "pass-rate":
            from prm_fire.experiments.pass_rate import measure_pass_rate, render_pass_rate, write_pass_rate

            records = measure_pass_rate(config, args.levels, per_level=args.per_level, samples=args.samples,
                                        resources=resources)
            print(render_pass_rate(config, write_pass_rate(config, records)))
            print(f"written: {config.run_dir}/pass_rate.md, pass_rate.json ({time.perf_counter() - start:.0f}s)")
        if args.stage == "all":  # wave by wave, so a stopped run leaves every finished wave complete
            items = run_chain(config, resources=resources)
            print(f"data set and insertion: {len(items)} items kept ({time.perf_counter() - start:.0f}s so far)")
        if args.stage == "dataset":
            items = build_dataset(config, resources=resources)
            print(f"data set: {len(items)} items kept ({time.perf_counter() - start:.0f}s so far)")
        if args.stage == "insertion":
            methods = None if args.method == "both" else [args.method]
            for point in args.point or config.insertion.points:
                run_insertion(config, point, methods, resources=resources)
                print(f"insertion {point} done ({time.perf_counter() - start:.0f}s so far)")
    finally:
        resources.close()
    if args.stage in ("all", "table"):
        table = write_table5(config)
        print(render_markdown(table))
        print(f"written: {config.run_dir}/table5.md, table5.json, table5.png")
    return 0
