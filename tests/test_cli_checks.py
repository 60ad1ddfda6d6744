"""Every command refuses bad input before loading a model: exit 2, one line naming the input.

The table runs in one subprocess with ``PRM_FIRE_NO_MODEL_LOAD`` set, so a case that reached a model
load (or a conversion) would end in a RuntimeError (a traceback and exit 1), not in a one-line error.
It runs with an empty model cache (``PRM_FIRE_CACHE``), as on a fresh machine: the context and memory
checks must read the GGUF metadata, not a converted folder. Two cases run the real entry point in
their own process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prm_app.cli.checks import InputErrors
from prm_fire.models import CACHE_ENV, NO_LOAD_ENV

REPO = Path(__file__).resolve().parents[1]

DRIVER = textwrap.dedent("""
    import contextlib, io, json, sys, time
    from prm_app.cli import main
    results = []
    for argv in json.load(sys.stdin):
        err = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exit:
                code = exit.code
            except BaseException as exc:
                code, err = 1, io.StringIO(f"{type(exc).__name__}: {exc}")
        results.append({"code": code, "stderr": err.getvalue(), "seconds": time.perf_counter() - start})
    print(json.dumps(results))
""")


def _config(tmp_path: Path, shared_data: Path, name: str, **replace: str) -> str:
    text = f"""
name = "{name}"
out_dir = "{tmp_path / 'runs'}"
model = "smollm2-135m"
backend = "hf"
[data]
path = "{shared_data / 'gsm8k' / 'train.jsonl'}"
limit = 2
[prm]
name = "rollout"
options = {{ model = "smollm2-135m", m = 1, max_new_tokens = 16 }}
[insertion]
n = 10
ks = [1, 10]
"""
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


def _cases(tmp_path: Path, shared_data: Path) -> list[tuple[str, list[str], str]]:
    bad_lines = tmp_path / "bad.jsonl"
    good = (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines()[0]
    bad_lines.write_text(good + "\n{not json\n")
    not_a_model = tmp_path / "empty-folder"
    not_a_model.mkdir()
    long_response = tmp_path / "long.txt"
    long_response.write_text("We add the numbers one by one and keep the running total.\n" * 900)
    broken_tree = tmp_path / "tree.json"
    broken_tree.write_text('{"schema_version": 1, "nodes": [], "edges": []}')
    gsm8k = str(shared_data / "gsm8k" / "train.jsonl")
    ok = _config(tmp_path, shared_data, "ok")
    pb = ["processbench", "--split", "gsm8k", "--data-dir", str(shared_data / "processbench")]
    cases = [
        # branch: flags at parse time
        ("temperature", ["branch", "--temperature", "-1"], "argument --temperature: Input should be greater than or equal to 0"),
        ("top-p", ["branch", "--top-p", "1.5"], "argument --top-p: Input should be less than or equal to 1"),
        ("hot-top-k", ["branch", "--hot-top-k", "0"], "argument --hot-top-k"),
        ("max-new-tokens", ["branch", "--max-new-tokens", "0"], "argument --max-new-tokens"),
        ("n-zero", ["branch", "--n", "0"], "argument --n: must be an integer >= 1, got '0'"),
        ("point", ["branch", "--point", "line0"], "argument --point: unknown insertion point 'line0'"),
        ("first-error-negative", ["branch", "--first-error", "-1"], "argument --first-error"),
        # branch: files, names, backends
        ("data-missing", ["branch", "--data", str(tmp_path / "nope.jsonl")], "--data: "),
        ("data-folder", ["branch", "--data", str(tmp_path)], "is a folder, not a data file"),
        ("data-bad-line", ["branch", "--data", str(bad_lines)], f"{bad_lines} line 2: invalid JSON"),
        ("id", ["branch", "--data", gsm8k, "--id", "nope"], "--id: "),
        ("model-unknown", ["branch", "--model", "qwen-0.5b"], "--model: model 'qwen-0.5b' is neither an embedded key"),
        ("model-folder", ["branch", "--model", str(not_a_model)], "has no config.json"),
        ("backend-unknown", ["branch", "--backend", "onnx"], "--backend: unknown backend 'onnx'"),
        ("response-file", ["branch", "--response-file", str(tmp_path / "none.txt")], "--response-file: "),
        # branch: insertion point against the response, context, memory
        ("first-error-outside", ["branch", "--point", "line2", "--first-error", "7", "--response", "a\nb\nc"],
         "--first-error 7: the response has 3 lines (indices 0-2)"),
        ("first-error-inside-prefix", ["branch", "--point", "line3", "--first-error", "0", "--response", "a\nb\nc"],
         "--first-error 0: insertion point line3 keeps lines 0-1"),
        ("prm-without-index", ["branch", "--point", "prm", "--response", "a\nb"], "--point prm needs --first-error"),
        ("too-few-lines", ["branch", "--point", "line3", "--response", "One line."], "response has 1 line, insertion point line3 needs 3"),
        ("context-prefix", ["branch", "--model", "smollm2-135m", "--point", "line900", "--response-file", str(long_response)],
         "exceed the context of model 'smollm2-135m' (8192 tokens)"),
        ("context-budget", ["branch", "--model", "smollm2-135m", "--response-from", "model",
                            "--response-max-new-tokens", "9000"],
         "--response-max-new-tokens: prompt, then the base response"),
        ("n-memory", ["branch", "--model", "smollm2-135m", "--n", "100000"], "--n 100000: 100000 sequences of"),
        # table5
        ("limit-zero", ["table5", "--config", ok, "--limit", "0"], "argument --limit: must be an integer >= 1, got '0'"),
        ("limit-negative", ["table5", "--config", ok, "--limit", "-1"], "argument --limit: must be an integer >= 1"),
        ("config-unknown", ["table5", "--config", "gpu-big"], "--config: unknown config 'gpu-big'"),
        ("config-missing", ["table5", "--config", str(tmp_path / "none.toml")], "--config: "),
        ("config-ks", ["table5", "--config", _config(tmp_path, shared_data, "ks", **{"ks = [1, 10]": "ks = [1, 20]"})],
         "pass@k needs 1 <= k <= n = 10; ks has 20"),
        ("config-field", ["table5", "--config", _config(tmp_path, shared_data, "field", **{"limit = 2": "limit = 0"})],
         "data.limit: Input should be greater than or equal to 1"),
        ("config-prm", ["table5", "--config", _config(tmp_path, shared_data, "prm", **{'name = "rollout"': 'name = "oracle"'})],
         "prm.toml: prm.name: unknown PRM scorer 'oracle'"),
        ("config-prm-option", ["table5", "--config", _config(tmp_path, shared_data, "opt", **{"m = 1": "m = 0"})],
         "opt.toml: prm.options m: "),
        ("config-model", ["table5", "--config", _config(tmp_path, shared_data, "mod", **{'model = "smollm2-135m"\nbackend': 'model = "smollm3"\nbackend'})],
         "mod.toml: model: model 'smollm3'"),
        ("data-override-folder", ["table5", "--config", ok, "--data", str(tmp_path)], "--data: "),
        ("insertion-before-dataset", ["table5", "--config", ok, "--stage", "insertion"],
         "--stage insertion: " + str(tmp_path / "runs" / "ok" / "attempts.jsonl") + " does not exist yet"),
        ("table-before-insertion", ["table5", "--config", ok, "--stage", "table"], "--stage table: no insertion results"),
        ("items-one", ["table5", "--config", ok, "--stage", "table", "--items", "1"],
         "argument --items: expected 'all' or an integer >= 2, got '1'"),
        ("per-level", ["table5", "--config", ok, "--stage", "pass-rate", "--per-level", "0"], "argument --per-level"),
        # processbench
        ("pb-limit", [*pb, "--prm", "label", "--limit", "0"], "argument --limit"),
        ("pb-threshold", [*pb, "--prm", "label", "--threshold", "2"], "argument --threshold: must be a number in [0, 1]"),
        ("pb-prm", [*pb, "--prm", "oracle"], "--prm: unknown PRM scorer 'oracle'"),
        ("pb-option", [*pb, "--prm", "rollout", "--prm-option", "m=many"], "--prm-option m: "),
        ("pb-option-model", [*pb, "--prm", "rollout", "--prm-option", "model=nope"], "--prm-option model: model 'nope'"),
        ("pb-data", ["processbench", "--split", "gsm8k", "--prm", "label", "--data-dir", str(tmp_path)],
         "--data-dir/--split: " + str(tmp_path / "gsm8k.json") + ": no such file"),
        # view
        ("view-missing", ["view", str(tmp_path / "none.json")], "tree: "),
        ("view-folder", ["view", str(tmp_path)], "is a folder, not a file"),
        ("view-invalid", ["view", str(broken_tree)], "do not form a tree rooted at 'problem'"),
    ]
    for backend, package in (("vllm", "vllm"), ("llamacpp", "llama_cpp")):
        if importlib.util.find_spec(package) is None:
            cases.append((f"backend-{backend}", ["branch", "--backend", backend],
                          f"--backend: backend '{backend}' needs the '{package}' package, which is not installed: pip install"))
    if importlib.util.find_spec("vllm") is None:  # cpu-small names the vLLM backend
        cases.append(("config-backend", ["table5", "--config", "cpu-small", "--data", gsm8k],
                      "--config cpu-small: backend: backend 'vllm'"))
    return cases


def test_bad_input_exits_2_with_one_line_before_any_model_loads(tmp_path, shared_data):
    cases = _cases(tmp_path, shared_data)
    empty_cache = tmp_path / "empty-cache"
    empty_cache.mkdir()
    env = {**os.environ, NO_LOAD_ENV: "1", CACHE_ENV: str(empty_cache)}
    done = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps([argv for _, argv, _ in cases]),
                          capture_output=True, text=True, cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    failures = []
    for (name, _, expected), result in zip(cases, json.loads(done.stdout), strict=True):
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        ok = result["code"] == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
        if not ok:
            failures.append(f"{name}: exit {result['code']} in {result['seconds']:.1f}s, stderr {result['stderr']!r}")
    assert failures == []
    assert not (empty_cache / "hf").exists(), "a check converted a model"


@pytest.mark.parametrize(("argv", "expected"), [
    (["table5", "--config", "cpu-small", "--backend", "hf", "--limit", "-1"], "argument --limit"),
    (["branch", "--temperature", "-1"], "argument --temperature"),
])
def test_the_real_entry_point_exits_2_with_one_line(argv, expected, tmp_path):
    env = {**os.environ, NO_LOAD_ENV: "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "prm_app.cli", *argv], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=120)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and expected in done.stderr, done.stderr


def test_several_problems_are_reported_one_line_each(tmp_path):
    from prm_app.cli.branch import add_parser, check
    from prm_app.cli.checks import OneLineParser

    parser = OneLineParser(prog="prm-fire")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["branch", "--data", str(tmp_path / "x.jsonl"), "--model", "nope", "--backend", "onnx"])
    with pytest.raises(InputErrors) as caught:
        check(args)
    assert [line.split(":")[0] for line in caught.value.lines] == ["--data", "--backend", "--model"]


def _hostile_cases(tmp_path: Path, shared_data: Path) -> list[tuple[str, list[str], str]]:
    """The hostile trial's inputs: outputs that cannot be written, endless inputs, a run folder made with other
    settings or held by a live run, a tree with a duplicated node id, a scorer that does not exist."""
    from prm_app.experiments.config import load_config
    from prm_app.experiments.run_dir import LOCK, RECORD, record_fields

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    a_folder = tmp_path / "a-folder"
    a_folder.mkdir()
    ok = _config(tmp_path, shared_data, "ok")
    made = record_fields(load_config(ok)) | {"base_sampling.temperature": 0.3}
    (tmp_path / "runs" / "ok").mkdir(parents=True)
    (tmp_path / "runs" / "ok" / RECORD).write_text(json.dumps({"fields": made}))
    held = _config(tmp_path, shared_data, "held")
    (tmp_path / "runs" / "held").mkdir()
    (tmp_path / "runs" / "held" / LOCK).write_text(f"{os.getpid()}\n")  # this test's process: alive
    committed = sorted((REPO / "results").glob("*/trees/*.json"))  # a real tree written by a run
    duplicated = tmp_path / "dup.json"
    if committed:
        tree = json.loads(committed[0].read_text())
        tree["nodes"].append(tree["nodes"][-1])  # a node id twice: the second record would replace the first
        duplicated.write_text(json.dumps(tree))
    small = ["--model", "smollm2-135m", "--response", "a\nb\nc"]
    cases = [
        ("out-folder", ["branch", *small, "--out", str(a_folder)], f"--out: {a_folder} is a folder, not a file"),
        ("out-under-file", ["branch", *small, "--out", str(a_file / "x" / "tree.json")],
         f"--out: {a_file / 'x' / 'tree.json'}: {a_file} is a file, not a folder"),
        ("search-out-under-file", ["search", "--budget", "64", *small, "--out", str(a_file / "s.json")],
         f"{a_file} is a file, not a folder"),
        ("out-dir-file", ["table5", "--config", ok, "--out-dir", str(a_file)],
         f"--out-dir: {a_file / 'ok'}: {a_file} is a file"),
        ("pb-out-folder", ["processbench", "--split", "gsm8k", "--prm", "label", "--data-dir",
                           str(shared_data / "processbench"), "--out", str(a_file / "pb")],
         f"--out: {a_file / 'pb.jsonl'}"),
        ("data-dev-zero", ["branch", "--data", "/dev/zero"], "--data: /dev/zero is not a regular file"),
        ("response-dev-zero", ["branch", "--model", "smollm2-135m", "--response-file", "/dev/zero"],
         "--response-file: /dev/zero is not a regular file"),
        ("table5-data-dev-urandom", ["table5", "--config", ok, "--data", "/dev/urandom",
                                     "--out-dir", str(tmp_path / "o")],
         "--data: /dev/urandom is not a regular file"),
        ("settings-differ", ["table5", "--config", ok, "--stage", "dataset"],
         f"--config {ok}: {tmp_path / 'runs' / 'ok'} was made with base_sampling.temperature = 0.3, this run has 0.7"),
        ("run-locked", ["table5", "--config", held, "--stage", "dataset"],
         f"{tmp_path / 'runs' / 'held'} is being written by another run (pid {os.getpid()}"),
        ("search-best-of-n-prm", ["search", "--budget", "64", "--strategy", "best-of-n", "--prm", "nosuch", *small],
         "--prm: unknown PRM scorer 'nosuch'"),
        ("search-n-width", ["search", "--budget", "64", "--n", "50000", "--width", "2", *small],
         "--n 50000 x --width 2 = 100000: 100000 sequences of"),
        ("config-copied", ["table5", "--config",
                           _config(tmp_path, shared_data, "copied", **{'name = "rollout"': 'name = "x"'})],
         f"--config {tmp_path / 'copied.toml'}: prm.name: unknown PRM scorer 'x'"),
    ]
    if committed:
        cases.append(("view-duplicate-id", ["view", str(duplicated)], "appears more than once"))
        cases.append(("view-out-under-file", ["view", str(committed[0]), "-o", str(a_file / "t.html")],
                      f"-o/--out: {a_file / 't.html'}: {a_file} is a file"))
    return cases


def test_hostile_inputs_are_refused_with_one_line_and_nothing_written(tmp_path, shared_data):
    cases = _hostile_cases(tmp_path, shared_data)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    env = {**os.environ, NO_LOAD_ENV: "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps([argv for _, argv, _ in cases]),
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    failures = []
    for (name, _, expected), result in zip(cases, json.loads(done.stdout), strict=True):
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        if not (result["code"] == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]):
            failures.append(f"{name}: exit {result['code']}, stderr {result['stderr']!r}")
    assert failures == [], "\n".join(failures)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before  # nothing written
