"""Step labels and branches as training data, in TRL's dataset types (``prm-fire export``).

>>> from prm_app.export import export                                         # doctest: +SKIP
>>> export(["results/cpu-power/trees"], "out/steps.parquet")                    # doctest: +SKIP
>>> export(["results/cpu-power/trees"], "out/pairs.jsonl", kind="pairs")        # doctest: +SKIP

Inputs (:mod:`prm_app.export.sources`): ProcessBench labels, a scorer's ProcessBench journal, a
Table 5 data set, branched trees. Rows (:mod:`prm_app.export.rows`): stepwise supervision
(``prompt``, ``completions``, ``labels``) or preference pairs (``prompt``, ``chosen``, ``rejected``).
Output (:mod:`prm_app.export.write`): a ``datasets`` Dataset saved to disk, parquet or JSON lines.
"""

from __future__ import annotations

from pathlib import Path

from prm_app.export.rows import AFTER_ERROR, AfterError, PreferenceRow, StepwiseRow, stepwise_row
from prm_app.export.sources import ROW_KINDS, ExportError, RowKind, expand_sources, read_rows, source_kind
from prm_app.export.tree_labels import NoGradedBranchesError, tree_pairs, tree_stepwise
from prm_app.export.write import FORMATS, OutputFormat, output_format, write_rows


def collect_rows(sources: list[str | Path], kind: RowKind = "stepwise",
                 after_error: AfterError = "drop") -> list[StepwiseRow] | list[PreferenceRow]:
    """The rows of every input (a folder: its files), in order; an unreadable input is an :class:`ExportError`."""
    rows: list = []
    for path in expand_sources([Path(p) for p in sources]):
        try:
            rows += read_rows(path, kind, after_error)
        except NoGradedBranchesError as err:
            raise ExportError(str(err)) from None
    if not rows:
        raise ExportError(f"{', '.join(map(str, sources))}: nothing to export as {kind} rows")
    return rows


def export(sources: list[str | Path], out: str | Path, *, kind: RowKind = "stepwise",
           fmt: OutputFormat | None = None, after_error: AfterError = "drop") -> tuple[Path, int]:
    """Read ``sources``, write their ``kind`` rows to ``out`` (format from ``fmt`` or the name); returns
    the path written and the number of rows."""
    rows = collect_rows(sources, kind, after_error)
    return write_rows(rows, out, fmt), len(rows)


__all__ = [
    "AFTER_ERROR", "AfterError", "ExportError", "FORMATS", "NoGradedBranchesError", "OutputFormat", "PreferenceRow",
    "ROW_KINDS", "RowKind", "StepwiseRow", "collect_rows", "expand_sources", "export", "output_format", "read_rows",
    "source_kind", "stepwise_row", "tree_pairs", "tree_stepwise", "write_rows",
]
