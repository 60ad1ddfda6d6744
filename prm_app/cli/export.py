"""``prm-fire export``: step labels and sibling branches as training data (TRL's dataset types).

``prm-fire export SOURCE... --out PATH [--kind stepwise|pairs] [--format disk|parquet|jsonl]
[--after-error drop|false]``. Sources: ProcessBench splits, ProcessBench results journals of any
scorer, Table 5 ``dataset.jsonl`` files, tree JSON files, or folders of them (:mod:`prm_app.export`).
Every input and the output path are checked before anything is read in full; the output is written
under a temporary name and renamed, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from prm_app.cli.checks import Problems


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``export`` and its options."""
    from prm_app.export import AFTER_ERROR, FORMATS, ROW_KINDS

    p = sub.add_parser("export", help="write step labels (TRL stepwise supervision) or sibling branches "
                                      "(preference pairs) as a datasets Dataset")
    p.add_argument("sources", type=Path, nargs="+", metavar="SOURCE",
                   help="ProcessBench split .json, ProcessBench results .jsonl, Table 5 dataset.jsonl, tree .json, "
                        "or a folder of them")
    p.add_argument("--out", type=Path, required=True,
                   help="output: a folder (save_to_disk), a .parquet or a .jsonl file")
    p.add_argument("--kind", choices=ROW_KINDS, default="stepwise",
                   help="stepwise: prompt, completions, labels (default); pairs: prompt, chosen, rejected (trees only)")
    p.add_argument("--format", choices=FORMATS, help="default: from --out (.parquet, .jsonl, else a saved folder)")
    p.add_argument("--after-error", choices=AFTER_ERROR, default="drop",
                   help="steps after the first wrong one: drop them (default, as TRL's PRM800K set) or label them False")


def _check_out(out: Path, fmt: str) -> None:
    """The output's folder exists and is writable; an existing output is of the kind about to replace it."""
    from prm_app.preflight import InputError

    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"--out: {parent}: {'not a folder' if parent.exists() else 'no such folder'}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--out: {parent}: folder is not writable")
    if fmt == "disk" and out.is_file():
        raise InputError(f"--out: {out} is a file; a saved dataset is a folder (or give a .parquet / .jsonl name)")
    if fmt == "disk" and out.is_dir() and any(out.iterdir()) and not (out / "dataset_info.json").exists():
        raise InputError(f"--out: {out} is a folder that holds no saved dataset; refusing to replace it")
    if fmt != "disk" and out.is_dir():
        raise InputError(f"--out: {out} is a folder, not a {fmt} file")


def check(args: argparse.Namespace) -> tuple[list[Path], str]:
    """Every source is readable and of a known kind, and the output can be written; returns the files and
    the output format."""
    from prm_app.export import ExportError, expand_sources, output_format, source_kind
    from prm_app.preflight import InputError

    problems = Problems()
    files: list[Path] = []
    for source in args.sources:
        with problems.check():
            try:
                found = expand_sources([source])
                for path in found:
                    kind = source_kind(path)
                    if args.kind == "pairs" and kind != "tree":
                        raise ExportError(f"{path}: preference pairs come from a branched tree, not from a "
                                          f"{kind} file")
                files += found
            except ExportError as err:
                raise InputError(str(err)) from None
    fmt = output_format(args.out, args.format)
    with problems.check():
        _check_out(args.out, fmt)
    problems.raise_if_any()
    return files, fmt


def standing(args: argparse.Namespace) -> str:
    """The output is renamed into place only when complete: nothing was written."""
    return f"{args.out} not written; rerun the same command"


def run(args: argparse.Namespace) -> int:
    """Run ``prm-fire export``."""
    import datasets

    from prm_app.export import collect_rows, write_rows

    files, fmt = check(args)
    rows = collect_rows(files, args.kind, args.after_error)
    datasets.disable_progress_bars()
    out = write_rows(rows, args.out, fmt)  # type: ignore[arg-type]
    print(f"{len(rows)} {args.kind} rows from {len(files)} file(s) -> {out} ({fmt})")
    return 0
