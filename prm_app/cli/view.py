"""``prm-fire view``: turn a tree JSON into a self-contained HTML page (or DOT / PNG for papers)."""

from __future__ import annotations

import argparse
from pathlib import Path

from prm_app.cli.checks import Problems

FORMATS = ("html", "dot", "png")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``view`` and its options."""
    v = sub.add_parser("view", help="write a tree JSON as one offline HTML page (or --format dot|png)")
    v.add_argument("tree", type=Path, help="tree JSON written by `prm-fire branch`")
    v.add_argument("-o", "--out", type=Path, help="output file (default: the tree's path with .html/.dot/.png)")
    v.add_argument("--format", choices=FORMATS, default=None,
                   help="html (default), dot (needs pydot: pip install 'prm-fire[view]') or png (matplotlib); "
                        "default: from the --out suffix, else html")
    v.add_argument("--title", help="page title (html only)")


NEEDS = {"dot": ("pydot", "pip install 'prm-fire[view]'"), "png": ("matplotlib", "pip install 'prm-fire[view]'")}


def check(args: argparse.Namespace) -> tuple[str, Path, object]:
    """The format, the output path and the tree read from its file: each problem one line."""
    import importlib.util

    from prm_app.preflight import InputError, check_output, read_text
    from prm_fire.tree import TreeError, tree_from_json

    fmt = args.format
    if fmt is None:
        suffix = args.out.suffix.lstrip(".").lower() if args.out else ""
        fmt = suffix if suffix in FORMATS else "html"
    problems = Problems()
    tree = None
    with problems.check():
        if fmt in NEEDS and importlib.util.find_spec(NEEDS[fmt][0]) is None:
            raise InputError(f"--format {fmt} needs {NEEDS[fmt][0]}, which is not installed: {NEEDS[fmt][1]}")
    with problems.check():
        try:
            tree = tree_from_json(read_text(args.tree, where="tree"), source=str(args.tree))
        except TreeError as err:
            raise InputError(f"tree: {err}") from None
    out = args.out or args.tree.with_suffix(f".{fmt}")
    with problems.check():
        room = 2 * args.tree.stat().st_size if args.tree.is_file() else 0  # an HTML page: ~1.5 x its tree's JSON
        check_output(out, where="-o/--out" if args.out else f"tree (the {fmt} goes beside it)", need=room)
    problems.raise_if_any()
    return fmt, out, tree


def standing(args: argparse.Namespace) -> str:
    """``view`` writes one file at the end: nothing is half done."""
    return "nothing written; rerun the same command"


def run(args: argparse.Namespace) -> int:
    """Run ``prm-fire view``."""
    fmt, out, tree = check(args)
    if fmt == "html":
        from prm_fire.view import write_html

        path = write_html(tree, out, title=args.title)
    elif fmt == "dot":
        from prm_fire.tree_figure import write_dot

        try:
            path = write_dot(tree, out)
        except ImportError as err:
            raise ValueError(str(err)) from None
    else:
        from prm_fire.tree_figure import write_png

        try:
            path = write_png(tree, out)
        except ImportError as err:
            raise ValueError(f"--format png needs matplotlib: pip install 'prm-fire[view]' ({err})") from None
    print(f"{fmt} written to {path}")
    return 0
