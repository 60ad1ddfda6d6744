"""``prm-fire table5``: the whole Table 5 chain for a config, or one stage of it.

Stages: ``dataset`` (base responses, PRM, filter), ``insertion`` (branching at each point),
``table`` (aggregate, markdown, JSON, PNG). ``all`` runs the first two in waves of problems
(:mod:`prm_app.experiments.chain`), then the table. Every stage resumes from what it wrote.
``pass-rate`` (not part of ``all``) measures the policy's pass rate by MATH level (or reference-solution
length), to choose the subset; ``power`` plans the run's size from its first kept items.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from prm_app.cli.checks import Problems, at_least, point

GENERATING_STAGES = ("all", "pass-rate", "dataset", "insertion")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``table5`` and its options."""
    p = sub.add_parser("table5", help="reproduce the FIRE paper's Table 5 for a config (resumable)")
    p.add_argument("--config", required=True, help="shipped config name (cpu-small, cpu-power, paper) or a .toml path")
    p.add_argument("--stage", choices=["all", "pass-rate", "dataset", "insertion", "table", "power"], default="all")
    p.add_argument("--point", type=point, action="append",
                   help="insertion point(s) for the insertion stage (default: config's)")
    p.add_argument("--method", choices=["regular", "fire", "both"], default="both")
    p.add_argument("--out-dir", help="override the config's out_dir")
    p.add_argument("--limit", type=at_least(1), help="override the config's number of problems (>= 1)")
    p.add_argument("--wave-size", type=at_least(1),
                   help="override the config's wave_size (problems per generator call, >= 1)")
    p.add_argument("--backend", help="override the config's backend (its backend options are dropped)")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run the chain's engines on a Ray cluster (extra `ray`): no ADDRESS starts a local one, "
                        "'auto' joins this node's running cluster, host:port or ray://host:10001 a remote one")
    p.add_argument("--actors", type=at_least(1), help="with --ray: engines (one per Ray actor); default: what fits")
    p.add_argument("--data", help="override the config's data file (e.g. to measure pass rates on another set)")
    p.add_argument("--data-seed", type=int,
                   help="override the config's shuffle seed (e.g. to measure pass rates on other problems)")
    p.add_argument("--levels", type=level_list, default=[1, 2, 3],
                   help="pass-rate stage: comma-separated MATH levels, or 'all' (one row, e.g. GSM8K)")
    p.add_argument("--per-level", type=at_least(1), default=10, help="pass-rate stage: problems per level")
    p.add_argument("--samples", type=at_least(1), default=4, help="pass-rate stage: responses per problem")
    p.add_argument("--power-items", type=at_least(2), default=30,
                   help="power stage: plan the run's size from its first N kept items (default 30)")
    p.add_argument("--contrasts", type=contrast_list, metavar="A-B,...",
                   help="power stage: instead, items needed for differences between two insertion points of one "
                        "method (e.g. oracle-line1,oracle-prm), from every item both hold: sizes another split's run")
    p.add_argument("--items", type=item_count, metavar="N|all", default=argparse.SUPPRESS,
                   help="table: aggregate the first N kept items in attempt order, or 'all' "
                        "(overrides the config's insertion.items)")
    p.add_argument("--allow-unequal", action="store_true",
                   help="table: aggregate even if the cells hold different items (a run still in progress)")
    p.add_argument("--overwrite", action="store_true",
                   help="clear the run folder first; without it, a folder made with other record-changing settings "
                        "(model, backend, sampling, PRM, filter, data selection, n) is refused, not resumed into")


def contrast_list(text: str) -> list[tuple[str, str]]:
    """``"oracle-line1,oracle-prm"`` -> ``[("oracle", "line1"), ("oracle", "prm")]``.

    >>> contrast_list("oracle-line1, prm-line3")
    [('oracle', 'line1'), ('prm', 'line3')]
    """
    pairs = []
    for part in text.split(","):
        a, sep, b = part.strip().partition("-")
        if not (sep and a and b):
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not A-B (two insertion points joined by '-')")
        pairs.append((point(a), point(b)))
    return pairs


def level_list(text: str) -> list[int] | None:
    """``"1,2,3"`` -> ``[1, 2, 3]``; ``"all"`` -> None (data without levels, e.g. GSM8K)."""
    if text == "all":
        return None
    try:
        return [int(level) for level in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'all' or comma-separated integers like 1,2,3, got {text!r}") from None


def item_count(text: str) -> int | None:
    """``"100"`` -> 100; ``"all"`` -> None (every branched item)."""
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 2:
        raise argparse.ArgumentTypeError(f"expected 'all' or an integer >= 2, got {text!r}")
    return int(text)


def _config(args: argparse.Namespace):
    """The config with the command line's overrides, validated as a whole (a bad override names its flag)."""
    from pydantic import ValidationError

    from prm_app.experiments.config import ExperimentConfig, load_config
    from prm_app.preflight import InputError

    if Path(args.config).suffix and not Path(args.config).is_file():
        raise InputError(f"--config: {args.config}: no such file")
    try:
        config = load_config(args.config, **({"out_dir": args.out_dir} if args.out_dir else {}))
    except ValueError as err:
        message = str(err)
        raise InputError(f"--{message}" if message.startswith("config ") else f"--config: {message}") from None
    raw = config.model_dump()
    if args.wave_size is not None:
        raw["wave_size"] = args.wave_size
    if args.backend:
        raw |= {"backend": args.backend, "backend_options": {}}
    if args.limit is not None:
        raw["data"]["limit"] = args.limit
    if hasattr(args, "items"):  # --items given (its default is SUPPRESS; 'all' is None)
        raw["insertion"]["items"] = args.items
    if args.ray is not None or args.actors is not None:
        executor = raw["executor"] if raw["executor"]["kind"] == "ray" else {"kind": "ray"}
        if args.ray is not None:
            executor |= {"address": args.ray or None}
        if args.actors is not None:
            executor |= {"actors": args.actors}
        raw["executor"] = executor
    if args.data:  # levels/subjects/length belong to the config's data set, not to another one
        raw["data"] |= {"path": args.data, "levels": None, "subjects": None, "min_solution_lines": None}
    if args.data_seed is not None:
        raw["data"]["seed"] = args.data_seed
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        raise InputError(f"--config {args.config} with overrides: {'.'.join(map(str, first['loc']))}: "
                         f"{first['msg']}") from None


def check(args: argparse.Namespace):
    """Check the config, its data, model, backend, PRM, what the stage needs, context and memory; no model loads."""
    from prm_app.experiments.dataset import read_items, select_problems
    from prm_app.experiments.insertion import journal_path
    from prm_app.preflight import InputError, Request, check_backend, check_model, check_prm, check_requests, \
        kv_bytes, read_problems
    from prm_fire.prompts import build_messages

    from prm_app.experiments.run_dir import check_settings
    from prm_app.preflight import check_output

    config = _config(args)
    problems = Problems()
    out_flag = "--out-dir" if args.out_dir else f"--config {args.config}: out_dir"
    with problems.check():
        check_output(config.run_dir, where=out_flag, folder=True)
        check_settings(config, where=f"--config {args.config}", overwrite=args.overwrite)
    data_flag = "--data" if args.data else f"--config {args.config}: data.path"
    pool, items, shape = [], [], None
    if args.stage in ("all", "dataset", "pass-rate"):
        with problems.check():
            pool = read_problems(config.data.path, where=data_flag)
            if args.stage != "pass-rate":
                try:
                    pool = select_problems(config.data)
                except ValueError as err:
                    raise InputError(f"{data_flag}: {err}") from None
    if args.stage in ("all", "dataset"):
        with problems.check():
            where = f"--config {args.config}: prm"
            check_prm(config.prm.name, config.prm.options, where=f"{where}.name", where_options=f"{where}.options")
    if args.stage == "insertion":
        attempts = config.run_dir / "attempts.jsonl"
        with problems.check():
            if not attempts.is_file():
                raise InputError(f"--stage insertion: {attempts} does not exist yet; run --stage dataset "
                                 "(or the whole chain, without --stage) first")
            items = read_items(config)
    if args.contrasts is not None:
        with problems.check():
            if args.stage != "power":
                raise InputError("--contrasts: only the power stage plans contrasts (add --stage power)")
            missing = sorted({p for pair in args.contrasts for p in pair} - set(config.insertion.points))
            if missing:
                raise InputError(f"--contrasts: {', '.join(missing)} not among the config's points "
                                 f"({', '.join(config.insertion.points)})")
    if args.stage in ("table", "power"):
        points = config.insertion.points
        with problems.check():
            if not any(journal_path(config, p).is_file() for p in points):
                raise InputError(f"--stage {args.stage}: no insertion results in {config.run_dir / 'insertion'}; "
                                 "run --stage insertion (or the whole chain) first")
    if args.stage in GENERATING_STAGES:
        backend_flag = "--backend" if args.backend else f"--config {args.config}: backend"
        with problems.check():
            check_backend(config.backend, where=backend_flag)
        with problems.check():
            shape = check_model(config.model, where=f"--config {args.config}: model")
    if config.executor.kind == "ray":
        from prm_fire.scale.executor import check_ray_installed

        where = "--ray" if args.ray is not None else f"--config {args.config}: executor"
        with problems.check():
            if args.stage not in ("all", "table"):
                raise InputError(f"{where}: the Ray executor runs the whole chain (no --stage, or --stage all); "
                                 f"--stage {args.stage} runs locally")
            try:
                check_ray_installed(where)
            except ImportError as err:
                raise InputError(str(err)) from None
    problems.raise_if_any()

    if shape is not None:
        base, spec = config.base_sampling, config.insertion
        requests, n = [], spec.n
        if args.stage == "pass-rate":
            requests = [Request(f"problem {p.id!r} (base_sampling.max_new_tokens)",
                                tuple(m.content for m in build_messages(p)), base.max_new_tokens) for p in pool]
            n = args.samples
        for p in pool if args.stage in ("all", "dataset") else []:
            prompt = tuple(m.content for m in build_messages(p))
            requests.append(Request(f"problem {p.id!r} (base_sampling.max_new_tokens)", prompt, base.max_new_tokens))
            requests.append(Request(f"problem {p.id!r} (base_sampling + insertion.sampling max_new_tokens)", prompt,
                                    base.max_new_tokens + spec.sampling.max_new_tokens))
        for item in items:
            requests.append(Request(f"item {item.problem.id!r} (response + insertion.sampling.max_new_tokens)",
                                    (*(m.content for m in build_messages(item.problem)), item.response),
                                    spec.sampling.max_new_tokens))
        with problems.check():
            check_requests(shape, requests, n=n, bytes_per_value=kv_bytes(config.backend, config.backend_options),
                           where="insertion.n" if args.stage != "pass-rate" else "--samples")
        with problems.check():
            from prm_app.preflight import check_free_space

            check_free_space(config.run_dir, _room(args, config, pool, items), where=out_flag)
    problems.raise_if_any()
    return config


def _room(args: argparse.Namespace, config, pool: list, items: list) -> int:
    """Bytes a generating stage writes at most: every problem left kept and every branch at its token budget."""
    from prm_app.experiments.dataset import Attempt
    from prm_app.experiments.insertion import journal_path
    from prm_fire.journal import complete_lines, read_journal
    from prm_app.preflight import BYTES_PER_TOKEN

    base, spec = config.base_sampling, config.insertion
    methods = spec.methods if args.method == "both" or args.stage != "insertion" else [args.method]
    per_set = spec.n * spec.sampling.max_new_tokens
    if args.stage == "pass-rate":
        tokens = args.per_level * len(args.levels or [None]) * args.samples * base.max_new_tokens
    elif args.stage == "insertion":
        tokens = per_set * sum(max(0, len(items) * len(methods) - len(complete_lines(journal_path(config, p))))
                               for p in args.point or spec.points)
    else:
        tried = {a.problem_id for a in read_journal(config.run_dir / "attempts.jsonl", Attempt)}
        left = sum(p.id not in tried for p in pool)
        branched = len(spec.points) * len(methods) * per_set if args.stage == "all" else 0
        tokens = left * (base.max_new_tokens + branched)
    return BYTES_PER_TOKEN * tokens


def standing(args: argparse.Namespace) -> str:
    """What the run's journals hold (the unit in progress is not in them), and how to resume."""
    from prm_fire.journal import complete_lines

    try:
        config = _config(args)
    except (ValueError, OSError):
        return "nothing recorded"
    run = config.run_dir
    count = lambda path: len(complete_lines(path))  # noqa: E731
    parts = []
    if (run / "pass_rate.jsonl").exists():
        parts.append(f"pass rate of {count(run / 'pass_rate.jsonl')} problems")
    if (run / "attempts.jsonl").exists():
        kept = sum('"kept":true' in line for _, line in complete_lines(run / "attempts.jsonl"))
        parts.append(f"{count(run / 'attempts.jsonl')} problems tried, {kept} kept")
    sets = {p.stem: count(p) for p in sorted((run / "insertion").glob("*.jsonl"))}
    if sets:
        parts.append(f"{sum(sets.values())} branch sets (" + ", ".join(f"{k} {v}" for k, v in sets.items()) + ")")
    held = "; ".join(parts) or "nothing yet"
    return f"{run} holds {held}; the unit in progress was dropped; rerun the same command to resume"


def run(args: argparse.Namespace) -> int:
    """Run the asked stages in order, sharing one set of loaded models (built only if needed)."""
    from prm_app.experiments.run_dir import RunLock

    config = check(args)
    with RunLock(config.run_dir, where="--out-dir" if args.out_dir else f"--config {args.config}: out_dir"):
        return _run_locked(args, config)


def _run_locked(args: argparse.Namespace, config) -> int:
    """:func:`run` once this process holds the run folder: ``--overwrite`` clears it, the record is written."""
    from prm_app.experiments.run_dir import clear, write_record

    if args.overwrite:
        clear(config.run_dir)
    write_record(config)

    from prm_app.experiments.chain import run_chain
    from prm_app.experiments.dataset import build_dataset
    from prm_app.experiments.insertion import run_insertion
    from prm_app.experiments.resources import Resources
    from prm_app.experiments.table import render_markdown, write_table5

    print(f"config {config.name}: model {config.model} ({config.backend}), PRM {config.prm.name}, "
          f"waves of {config.wave_size} problems, outputs in {config.run_dir}")
    resources = Resources(config, progress=True)  # a bar inside each stage: every generator call shows its steps
    start = time.perf_counter()
    try:
        if args.stage == "pass-rate":
            from prm_app.experiments.pass_rate import measure_pass_rate, render_pass_rate, write_pass_rate

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
            for point_name in args.point or config.insertion.points:
                results = run_insertion(config, point_name, methods, resources=resources)
                print(f"insertion {point_name}: {len(results)} branch sets recorded "
                      f"({time.perf_counter() - start:.0f}s so far)")
    finally:
        resources.close()
    if args.stage in ("all", "table"):
        table = write_table5(config, allow_unequal=args.allow_unequal)
        print(render_markdown(table))
        print(f"written: {config.run_dir}/table5.md, table5.json, table5.png")
    if args.stage == "power" and args.contrasts is not None:
        from prm_app.experiments.power import render_contrasts, write_contrasts

        print(render_contrasts(write_contrasts(config, args.contrasts)))
        print(f"written: {config.run_dir}/power-contrasts.md, power-contrasts.json")
    elif args.stage == "power":
        from prm_app.experiments.power import render_power, write_power

        print(render_power(write_power(config, first_items=args.power_items)))
        print(f"written: {config.run_dir}/power.md, power.json")
    return 0
