"""The ``prm-fire`` command line: one module per subcommand, each with ``add_parser``, ``run`` and ``standing``.

Every command checks all of its input before it loads a model (bad input: one ``error:`` line per
problem on stderr, exit code 2), outputs included: a folder that cannot be written, a read-only file
system, or less free space than the command may write (:func:`prm_app.preflight.check_free_space`). A
write that fails anyway (the disk fills or turns read-only during the run) ends in one line naming the
file, exit code 1 (the input was fine, the machine failed; nothing half-written: :mod:`prm_fire.atomic`).
Ctrl-C stops it without a traceback: one line says what is recorded and how to resume (``standing``),
exit code 130.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from prm_app.cli import branch, export, processbench, processbench_report, search, table5, view
from prm_app.cli.checks import InputErrors, OneLineParser, report

COMMANDS: dict[str, ModuleType] = {"branch": branch, "export": export, "processbench": processbench,
                                   "processbench-report": processbench_report, "search": search, "table5": table5,
                                   "view": view}
INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C


def installed_version() -> str:
    """The installed distribution's version (``prm-fire --version``); ``unknown`` when run from a bare checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prm-fire")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand of :data:`COMMANDS` (errors: one line, exit 2)."""
    parser = OneLineParser(prog="prm-fire", description="Process-reward-guided FIRE sampling.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def _close_progress_bars() -> None:
    """Close open tqdm bars now, so their last line comes before the ``interrupted:`` line, not after it."""
    if "tqdm" in sys.modules:
        from tqdm import tqdm

        for bar in list(getattr(tqdm, "_instances", ())):
            bar.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``prm-fire`` console script; bad input exits 2, Ctrl-C exits 130."""
    from prm_fire.models import ModelError

    command = None
    try:
        args = build_parser().parse_args(argv)
        command = COMMANDS[args.command]
        return command.run(args)
    except KeyboardInterrupt:
        standing = command.standing(args) if command is not None else "nothing was started"
        _close_progress_bars()
        print(f"\ninterrupted: {standing}", file=sys.stderr)
        return INTERRUPTED
    except InputErrors as err:
        report(err.lines)
        return 2
    except (ValueError, KeyError, FileNotFoundError, ModelError) as err:
        message = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
        report(["; ".join(line.strip() for line in message.splitlines() if line.strip())])  # one line
        return 2
    except OSError as err:  # a full disk, a file system turned read-only: no traceback, the file named
        report([f"{err.filename}: {err.strerror}" if err.filename else str(err)])
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
