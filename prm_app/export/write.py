"""Write rows as a Hugging Face ``datasets`` Dataset: saved to disk, parquet or JSON lines.

The columns have explicit types (TRL's: ``completions`` a list of strings, ``labels`` a list of
bools), so an empty or odd file cannot change them. The output is written under a temporary name and
renamed into place (:func:`prm_fire.atomic.replace_atomically`): a failed write leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prm_fire.atomic import replace_atomically
from prm_app.export.rows import PreferenceRow, StepwiseRow

OutputFormat = Literal["disk", "parquet", "jsonl"]
FORMATS: tuple[OutputFormat, ...] = ("disk", "parquet", "jsonl")


def output_format(out: Path, fmt: OutputFormat | None = None) -> OutputFormat:
    """``fmt`` if given, else from the name: ``.parquet``, ``.jsonl``, anything else a ``save_to_disk`` folder.

    >>> output_format(Path("x.parquet")), output_format(Path("x.jsonl")), output_format(Path("x"))
    ('parquet', 'jsonl', 'disk')
    """
    if fmt is not None:
        return fmt
    return {".parquet": "parquet", ".jsonl": "jsonl"}.get(out.suffix, "disk")  # type: ignore[return-value]


def features(kind: type[StepwiseRow] | type[PreferenceRow]) -> Any:
    """The ``datasets.Features`` of a row type: strings, and TRL's list columns."""
    import datasets

    text = datasets.Value("string")
    if kind is StepwiseRow:
        return datasets.Features({"id": text, "prompt": text, "completions": datasets.List(text),
                                  "labels": datasets.List(datasets.Value("bool"))})
    return datasets.Features({"id": text, "prompt": text, "chosen": text, "rejected": text, "prefix": text})


def write_rows(rows: list[StepwiseRow] | list[PreferenceRow], out: str | Path, fmt: OutputFormat | None = None) -> Path:
    """Write ``rows`` (all of one type, at least one) to ``out``; returns the path written."""
    import datasets

    if not rows:
        raise ValueError(f"{out}: no rows to write")
    out = Path(out)
    fmt = output_format(out, fmt)
    table = datasets.Dataset.from_list([r.model_dump() for r in rows], features=features(type(rows[0])))
    writers = {
        "disk": lambda p: table.save_to_disk(str(p)),
        "parquet": lambda p: table.to_parquet(str(p)),
        "jsonl": lambda p: table.to_json(str(p), lines=True, force_ascii=False),
    }
    return replace_atomically(out, writers[fmt])


__all__ = ["FORMATS", "OutputFormat", "features", "output_format", "write_rows"]
