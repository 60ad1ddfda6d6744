"""Branching throughput: n branches of 128 tokens from one ~300-token prefix, backends side by side.

The ``*-8sets-*`` rows measure many branch sets per engine call: 8 sets (4 GSM8K test prefixes, chat
prompt + the first 2 solution lines, x FIRE and regular, n each, own seeds) served by one
``branch_many`` call (``one-call``) against the same 8 sets sent one ``branch_ids`` call after another
(``one-by-one``); both draw the same branches, so the tokens/s ratio is the wall-time ratio. The
``*-8sets-paired`` rows run both ways on ONE engine, alternately (one-call first, then one-by-one
first, ...), and report the median of the per-pair ratios: on a shared machine whose load drifts, the
side-by-side ratio is the figure to quote (and one engine start instead of two).

The ``vllm-vs-raw-rounds`` row puts our vLLM backend against the raw engine on ONE engine: 8 GSM8K test
prefixes (chat prompt + the first 2 solution lines), n each, EOS honoured everywhere; per round, raw
``SamplingParams(n=n)`` with the 8 prompts in one call, our ``branch_many`` with 8 FIRE requests, and
with 8 regular requests, in an order rotated every round; it reports each runner's median tokens/s and
the median of its per-round ratios to raw.

Every row runs in its own subprocess (so its peak memory is its own): HF rows with this python, vLLM
rows with the vLLM virtual environment's python (``--vllm-python``, default
``~/.cache/prm-fire/venv-vllm/bin/python``, made by ``.ci/vllm.sh``). Each row loads its model, runs
one warm-up call, then ``--repeats`` timed calls; it reports the median tokens/s (tokens actually
generated / wall time of the call, prefill included) and the peak RSS of its process tree.

Usage::

    python benchmarks/branching.py                       # both models, every row
    python benchmarks/branching.py --models smollm2-135m --rows hf-naive,hf-fire
    python benchmarks/branching.py --rows hf-8sets-one-call,hf-8sets-one-by-one --out benchmarks/results/x.json

Adding a backend: append :class:`Row` entries to ``ROWS`` (a function ``setup(model_key, args)`` that
loads the model and returns a callable that generates once with the given number of new tokens and
returns the number of tokens generated) and, if it should be compared, :class:`Ratio` entries to ``RATIOS``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "branching.json"
DATA = REPO.parent / "shared" / "data" / "math" / "test.jsonl"
GSM8K = REPO.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
SET_PREFIXES = 4  # GSM8K prefixes of the *-8sets-* rows, each branched with FIRE and regular
ROUND_PREFIXES = 8  # GSM8K prefixes of the vllm-vs-raw-rounds row
PROBLEM_ID = "test/algebra/2240.json"  # Level 2; chat prompt + its first 3 solution lines ~290 tokens
POINT = "line4"  # keep 3 solution lines, branch at the 4th
MODELS = ["smollm2-135m", "qwen2.5-coder-0.5b"]
VLLM_PYTHON = Path.home() / ".cache" / "prm-fire" / "venv-vllm" / "bin" / "python"

Runner = Callable[[int], int]  # max new tokens -> tokens generated


@dataclass(frozen=True)
class Row:
    """One measured configuration: ``setup(model, args)`` loads and returns a callable generating once."""

    name: str
    python: str  # "main" (this interpreter) or "vllm" (the vLLM venv)
    what: str
    setup: Callable[[str, argparse.Namespace], Runner]
    paired: bool = False  # setup returns two runners (a, b), timed alternately; the row reports a/b per pair
    rounds: bool = False  # setup returns {name: runner}, the first the baseline, timed in rotated order per round


@dataclass(frozen=True)
class Ratio:
    """``tok/s(num) / tok/s(den)`` (``speed``), its inverse (``cost``), or a paired row's median
    per-pair ratio (``paired``: ``num`` is the row, ``den`` unused), with its target."""

    name: str
    num: str
    den: str
    kind: str  # "speed", "cost", "paired" or "rounds" (``num`` a rounds row, ``den`` one of its runners)
    target: str  # e.g. "<= 1.05", ">= 1.5"


# ----------------------------------------------------------------------------------------- workload
def workload(model: str):
    """The shared prompt: (messages, prefix text) of the benchmark problem."""
    from prm_fire.prefixes import build_prefix
    from prm_fire.problems import find_problem, load_problems
    from prm_fire.prompts import build_messages

    problem = find_problem(load_problems(DATA), PROBLEM_ID)
    prefix = build_prefix(problem.solution, POINT, problem_id=problem.id)
    return build_messages(problem), prefix.text


def set_workload(count: int = SET_PREFIXES) -> list[tuple]:
    """The ``*-8sets-*`` prefixes: (messages, prefix text) of the first ``count`` GSM8K test problems
    whose reference solution has at least 3 lines, its first 2 lines kept."""
    from prm_fire.prefixes import build_prefix
    from prm_fire.problems import load_problems
    from prm_fire.prompts import build_messages

    problems = [p for p in load_problems(GSM8K, limit=50) if len(p.solution.splitlines()) >= 3][:count]
    return [(build_messages(p), build_prefix(p.solution, "line3", problem_id=p.id).text) for p in problems]


def _sampling(method: str, args: argparse.Namespace, seed: int = 0):
    from prm_fire.sampling import SamplingConfig

    return SamplingConfig(method=method, temperature=args.temperature, max_new_tokens=args.new_tokens, seed=seed)


def _generated(branches) -> int:
    """Tokens actually generated: kept ids plus the EOS of branches that stopped."""
    return sum(len(b.token_ids) + (b.finish_reason == "stop") for b in branches)


# ----------------------------------------------------------------------------------------- HF rows
def setup_hf_naive(model: str, args: argparse.Namespace) -> Runner:
    """HF ``generate(num_return_sequences=n)`` from the full prompt: the prefix is prefilled n times."""
    from prm_fire.generators.hf import HFGenerator

    gen = HFGenerator(model)
    return _hf_naive_runner(gen, gen.encode(*workload(model)), args)


def _hf_naive_runner(gen, prompt_ids: list[int], args: argparse.Namespace) -> Runner:
    """``generate(num_return_sequences=n)`` on ``gen``'s model, EOS ignored."""
    import torch

    ids = torch.tensor([prompt_ids])

    def run(new_tokens: int) -> int:
        with torch.inference_mode():
            out = gen.model.generate(
                ids, do_sample=True, temperature=args.temperature, top_k=0, top_p=1.0,
                num_return_sequences=args.n, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            )
        return int((out.shape[1] - ids.shape[1]) * out.shape[0])

    return run


def setup_hf_rounds(model: str, args: argparse.Namespace) -> dict[str, Runner]:
    """The three HF rows (naive, our FIRE, our regular) on ONE loaded model, for :func:`rounds`."""
    gen = _generator("hf", model)
    messages, prefix = workload(model)
    return {"naive": _hf_naive_runner(gen, gen.encode(messages, prefix), args),
            "fire": _ours_runner(gen, messages, prefix, "fire", args),
            "regular": _ours_runner(gen, messages, prefix, "regular", args)}


def _ours_runner(gen, messages, prefix: str, method: str, args: argparse.Namespace) -> Runner:
    """``gen.branch`` of the benchmark prefix; call i seeded i."""
    calls = iter(range(1_000_000))

    def run(new_tokens: int) -> int:
        sampling = _sampling(method, args, next(calls)).model_copy(update={"max_new_tokens": new_tokens})
        return _generated(gen.branch(messages, prefix, args.n, sampling))

    return run


def _setup_ours(backend: str, method: str) -> Callable[[str, argparse.Namespace], Runner]:
    def setup(model: str, args: argparse.Namespace) -> Runner:
        from prm_fire.generators import make_generator

        return _ours_runner(make_generator(backend, model), *workload(model), method, args)

    setup.__doc__ = f"our {backend} backend, method={method}"
    return setup


def _sets_runner(gen, args: argparse.Namespace, together: bool) -> Runner:
    """8 branch sets (SET_PREFIXES prefixes x FIRE/regular) on ``gen``: one ``branch_many`` call, or one
    call each. Call i seeds its sets from i, so the i-th call of either mode draws the same branches."""
    from prm_fire.records import BranchRequest

    prompts = [gen.encode(*cut) for cut in set_workload()]
    calls = iter(range(1_000_000))

    def run(new_tokens: int) -> int:
        call = next(calls)
        requests = [
            BranchRequest(prompt_ids=ids, n=args.n, sampling=_sampling(method, args, 100 * call + 2 * k + m)
                          .model_copy(update={"max_new_tokens": new_tokens}))
            for k, ids in enumerate(prompts) for m, method in enumerate(("fire", "regular"))
        ]
        if together:
            sets = gen.branch_many(requests)
        else:
            sets = [gen.branch_ids(r.prompt_ids, r.n, r.sampling) for r in requests]
        return sum(_generated(branches) for branches in sets)

    return run


def _generator(backend: str, model: str):
    from prm_fire.generators import make_generator

    options = {"n_threads": int(os.environ.get("LLAMACPP_THREADS", "2"))} if backend == "llamacpp" else {}
    return make_generator(backend, model, **options)


def _setup_sets(backend: str, together: bool) -> Callable[[str, argparse.Namespace], Runner]:
    """The 8 sets in one call (``together``) or one call after another, on an engine of its own."""

    def setup(model: str, args: argparse.Namespace) -> Runner:
        return _sets_runner(_generator(backend, model), args, together)

    return setup


def _setup_sets_paired(backend: str) -> Callable[[str, argparse.Namespace], tuple[Runner, Runner]]:
    """Both ways of sending the 8 sets on ONE engine, for the worker to alternate (see ``paired``)."""

    def setup(model: str, args: argparse.Namespace) -> tuple[Runner, Runner]:
        gen = _generator(backend, model)
        return _sets_runner(gen, args, True), _sets_runner(gen, args, False)

    return setup


# ----------------------------------------------------------------------------------------- vLLM rows
def setup_vllm_raw(model: str, args: argparse.Namespace) -> Runner:
    """Plain vLLM: one request with ``SamplingParams(n=...)`` on the same token-id prompt and engine."""
    from vllm import SamplingParams, TokensPrompt

    from prm_fire.generators.vllm import VLLMGenerator

    gen = VLLMGenerator(model)
    prompt = TokensPrompt(prompt_token_ids=gen.encode(*workload(model)))

    def run(new_tokens: int) -> int:
        params = SamplingParams(n=args.n, temperature=args.temperature, max_tokens=new_tokens, ignore_eos=True)
        out = gen.llm.generate([prompt], params, use_tqdm=False)
        return sum(len(c.token_ids) for c in out[0].outputs)

    return run


def setup_vllm_rounds(model: str, args: argparse.Namespace) -> dict[str, Runner]:
    """Raw ``SamplingParams(n=n)`` (8 prompts, one call) and our ``branch_many`` (8 FIRE requests; 8
    regular requests) on ONE engine, EOS honoured everywhere."""
    from vllm import SamplingParams, TokensPrompt

    from prm_fire.records import BranchRequest

    gen = _generator("vllm", model)
    prompts = [gen.encode(*cut) for cut in set_workload(ROUND_PREFIXES)]
    calls = iter(range(1_000_000))

    def raw(new_tokens: int) -> int:
        params = SamplingParams(n=args.n, temperature=args.temperature, max_tokens=new_tokens)
        out = gen.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompts], params, use_tqdm=False)
        return sum(len(c.token_ids) for o in out for c in o.outputs)

    def ours(method: str) -> Runner:
        def run(new_tokens: int) -> int:
            call = next(calls)
            sets = gen.branch_many([
                BranchRequest(prompt_ids=ids, n=args.n, sampling=_sampling(method, args, 100 * call + k)
                              .model_copy(update={"max_new_tokens": new_tokens}))
                for k, ids in enumerate(prompts)
            ])
            return sum(_generated(branches) for branches in sets)

        return run

    return {"raw": raw, "fire": ours("fire"), "regular": ours("regular")}


# ----------------------------------------------------------------------------------------- llama.cpp rows
def _setup_llamacpp(method: str, single: bool = False) -> Callable[[str, argparse.Namespace], Runner]:
    """Our llama.cpp backend (threads: $LLAMACPP_THREADS, default 2); ``single``: n=1, the baseline."""

    def setup(model: str, args: argparse.Namespace) -> Runner:
        from prm_fire.generators import make_generator

        gen = make_generator("llamacpp", model, n_threads=int(os.environ.get("LLAMACPP_THREADS", "2")))
        messages, prefix = workload(model)
        calls = iter(range(1_000_000))

        def run(new_tokens: int) -> int:
            sampling = _sampling(method, args, next(calls)).model_copy(update={"max_new_tokens": new_tokens})
            return _generated(gen.branch(messages, prefix, 1 if single else args.n, sampling))

        return run

    return setup


ROWS: list[Row] = [
    Row("hf-naive", "main", "HF generate(num_return_sequences=n), EOS ignored", setup_hf_naive),
    Row("hf-regular", "main", "our HF backend, regular", _setup_ours("hf", "regular")),
    Row("hf-fire", "main", "our HF backend, FIRE", _setup_ours("hf", "fire")),
    Row("hf-vs-naive-rounds", "main", "HF generate(num_return_sequences=n) (EOS ignored) vs our FIRE and "
        "regular, rotating on one loaded model", setup_hf_rounds, rounds=True),
    Row("vllm-raw", "vllm", "vLLM SamplingParams(n=n), EOS ignored", setup_vllm_raw),
    Row("vllm-regular", "vllm", "our vLLM backend, regular", _setup_ours("vllm", "regular")),
    Row("vllm-fire", "vllm", "our vLLM backend, FIRE", _setup_ours("vllm", "fire")),
    Row("vllm-vs-raw-rounds", "vllm", "vLLM raw n= vs our FIRE and regular branch_many, 8 GSM8K prefixes, "
        "rotating on one engine", setup_vllm_rounds, rounds=True),
    Row("llamacpp-single", "main", "our llama.cpp backend, regular, ONE branch", _setup_llamacpp("regular", True)),
    Row("llamacpp-regular", "main", "our llama.cpp backend, regular", _setup_llamacpp("regular")),
    Row("llamacpp-fire", "main", "our llama.cpp backend, FIRE", _setup_llamacpp("fire")),
]
for _backend, _python in (("hf", "main"), ("vllm", "vllm"), ("llamacpp", "main")):
    ROWS += [
        Row(f"{_backend}-8sets-one-call", _python, f"{_backend}: 8 branch sets in one call",
            _setup_sets(_backend, True)),
        Row(f"{_backend}-8sets-one-by-one", _python, f"{_backend}: the same 8 sets one call after another",
            _setup_sets(_backend, False)),
        Row(f"{_backend}-8sets-paired", _python, f"{_backend}: 8 sets in one call vs one after another, "
            "alternating on one engine", _setup_sets_paired(_backend), paired=True),
    ]

RATIOS: list[Ratio] = [
    Ratio("HF: FIRE cost / regular cost", "hf-fire", "hf-regular", "cost", "<= 1.05"),
    Ratio("HF: ours regular / naive (speed)", "hf-regular", "hf-naive", "speed", ">= 1.5"),
    Ratio("HF: ours FIRE / naive (speed)", "hf-fire", "hf-naive", "speed", ">= 1.5"),
    Ratio("HF: ours FIRE / naive, one model, per round (speed)", "hf-vs-naive-rounds", "fire", "rounds", ">= 1.5"),
    Ratio("HF: ours regular / naive, one model, per round (speed)", "hf-vs-naive-rounds", "regular", "rounds",
          ">= 1.5"),
    Ratio("vLLM: FIRE cost / regular cost", "vllm-fire", "vllm-regular", "cost", "<= 1.05"),
    Ratio("vLLM: ours FIRE / raw n-sampling (speed)", "vllm-fire", "vllm-raw", "speed", ">= 0.9"),
    Ratio("vLLM: ours regular / raw n-sampling (speed)", "vllm-regular", "vllm-raw", "speed", ">= 0.9"),
    Ratio("vLLM: ours FIRE / raw n=, one engine, per round (speed)", "vllm-vs-raw-rounds", "fire", "rounds",
          ">= 0.95"),
    Ratio("vLLM: ours regular / raw n=, one engine, per round (speed)", "vllm-vs-raw-rounds", "regular", "rounds",
          ">= 0.95"),
    Ratio("llama.cpp: FIRE cost / regular cost", "llamacpp-fire", "llamacpp-regular", "cost", "<= 1.05"),
    Ratio("llama.cpp: ours FIRE n branches / single stream (speed)", "llamacpp-fire", "llamacpp-single", "speed", ">= 2"),
    Ratio("llama.cpp FIRE / HF FIRE (speed)", "llamacpp-fire", "hf-fire", "speed", ">= 1"),
    Ratio("HF: 8 sets in one call / one after another (speed)", "hf-8sets-one-call", "hf-8sets-one-by-one",
          "speed", ">= 1"),
    Ratio("vLLM: 8 sets in one call / one after another (speed)", "vllm-8sets-one-call", "vllm-8sets-one-by-one",
          "speed", ">= 2"),
    Ratio("llama.cpp: 8 sets in one call / one after another (speed)", "llamacpp-8sets-one-call",
          "llamacpp-8sets-one-by-one", "speed", ">= 1"),
    Ratio("HF: 8 sets in one call / one after another, paired (speed)", "hf-8sets-paired", "", "paired", ">= 1"),
    Ratio("vLLM: 8 sets in one call / one after another, paired (speed)", "vllm-8sets-paired", "", "paired",
          ">= 2"),
    Ratio("llama.cpp: 8 sets in one call / one after another, paired (speed)", "llamacpp-8sets-paired", "",
          "paired", ">= 1"),
]


# ----------------------------------------------------------------------------------------- worker
class PeakRSS:
    """Polls the RSS of this process and all its descendants; ``peak`` is the largest sum seen."""

    def __init__(self, every: float = 0.1) -> None:
        import psutil

        self._proc, self._every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self._proc, *self._proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self._every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def worker(args: argparse.Namespace) -> dict:
    """Measure one row for one model in this process."""
    row = {r.name: r for r in ROWS}[args.worker]
    rss = PeakRSS()
    t0 = time.perf_counter()
    run = row.setup(args.model, args)
    load_s = time.perf_counter() - t0
    if row.paired or row.rounds:
        measured = paired(*run, args) if row.paired else rounds(run, args)
        return {"row": row.name, "model": args.model, "what": row.what, "load_s": round(load_s, 1),
                **measured, "peak_rss_mb": round(rss.stop() / 2**20)}
    run(args.warmup_tokens)  # warm-up (first-call costs, prefix cache filled as in any later call)
    rates, tokens = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        count = run(args.new_tokens)
        rates.append(count / (time.perf_counter() - t0))
        tokens.append(count)
    return {
        "row": row.name, "model": args.model, "what": row.what, "load_s": round(load_s, 1),
        "tok_s": round(statistics.median(rates), 2), "tok_s_all": [round(r, 2) for r in rates],
        "tokens": tokens, "peak_rss_mb": round(rss.stop() / 2**20),
    }


def paired(a: Runner, b: Runner, args: argparse.Namespace) -> dict:
    """Time ``a`` and ``b`` alternately (a b, b a, a b, ...: a drifting load hits both alike) and report
    a's tokens/s and the median of the per-pair speed ratios a/b."""
    a(args.warmup_tokens)
    b(args.warmup_tokens)
    rates: dict[str, list[float]] = {"a": [], "b": []}
    tokens = []
    for i in range(args.repeats):
        for name in ("ab" if i % 2 == 0 else "ba"):
            t0 = time.perf_counter()
            count = (a if name == "a" else b)(args.new_tokens)
            rates[name].append(count / (time.perf_counter() - t0))
            tokens.append(count)
    ratios = [x / y for x, y in zip(rates["a"], rates["b"])]
    return {"tok_s": round(statistics.median(rates["a"]), 2), "tok_s_all": [round(r, 2) for r in rates["a"]],
            "tok_s_other": round(statistics.median(rates["b"]), 2), "tok_s_other_all": [round(r, 2) for r in rates["b"]],
            "ratio": round(statistics.median(ratios), 3), "ratio_all": [round(r, 3) for r in ratios], "tokens": tokens}


def rounds(runners: dict[str, Runner], args: argparse.Namespace) -> dict:
    """Time every runner once per round, the order rotated each round (a drifting load hits all alike);
    report each runner's median tokens/s and the median of its per-round ratios to the first runner."""
    names = list(runners)
    for name in names:
        runners[name](args.warmup_tokens)
    rates: dict[str, list[float]] = {name: [] for name in names}
    tokens: dict[str, list[int]] = {name: [] for name in names}
    for i in range(args.repeats):
        for name in names[i % len(names):] + names[: i % len(names)]:
            t0 = time.perf_counter()
            count = runners[name](args.new_tokens)
            rates[name].append(count / (time.perf_counter() - t0))
            tokens[name].append(count)
    base = names[0]
    per_round = {name: [x / y for x, y in zip(rates[name], rates[base])] for name in names[1:]}
    return {"baseline": base,
            "tok_s": {name: round(statistics.median(r), 2) for name, r in rates.items()},
            "tok_s_all": {name: [round(x, 2) for x in r] for name, r in rates.items()},
            "ratio": {name: round(statistics.median(r), 3) for name, r in per_round.items()},
            "ratio_all": {name: [round(x, 3) for x in r] for name, r in per_round.items()},
            "tokens": tokens}


# ----------------------------------------------------------------------------------------- driver
def run_row(row: Row, model: str, args: argparse.Namespace) -> dict:
    python = sys.executable if row.python == "main" else str(args.vllm_python)
    if row.python == "vllm" and not Path(python).is_file():
        return {"row": row.name, "model": model, "error": f"no vLLM python at {python} (run .ci/vllm.sh)"}
    cmd = [python, __file__, "--worker", row.name, "--model", model, "--n", str(args.n),
           "--new-tokens", str(args.new_tokens), "--repeats", str(args.repeats),
           "--temperature", str(args.temperature), "--warmup-tokens", str(args.warmup_tokens)]
    # PYTHONPATH: the rows measure this checkout, not whichever copy of prm_fire is installed.
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": path}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"row": row.name, "model": model, "error": f"exit {proc.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1][len("RESULT "):])


def ratio_value(ratio: Ratio, by_row: dict[str, dict]) -> float | None:
    if ratio.kind == "paired":
        return by_row.get(ratio.num, {}).get("ratio")
    if ratio.kind == "rounds":
        return by_row.get(ratio.num, {}).get("ratio", {}).get(ratio.den)
    a, b = by_row.get(ratio.num, {}).get("tok_s"), by_row.get(ratio.den, {}).get("tok_s")
    if not a or not b:
        return None
    return a / b if ratio.kind == "speed" else b / a


def meets(value: float, target: str) -> bool:
    op, bound = target.split()
    return value <= float(bound) if op == "<=" else value >= float(bound)


def print_table(results: list[dict], models: list[str]) -> list[dict]:
    ratios = []
    for model in models:
        rows = [r for r in results if r["model"] == model]
        by_row = {r["row"]: r for r in rows if "error" not in r}
        print(f"\n## {model}\n")
        print("| row | what | tok/s (median) | runs | peak RSS MB | load s |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            if "error" in r:
                print(f"| {r['row']} | error: {r['error']} | | | | |")
            elif "baseline" in r:  # a rounds row: one line per runner, its per-round ratios to the baseline
                for name, rate in r["tok_s"].items():
                    runs = ", ".join(f"{x:.1f}" for x in r["tok_s_all"][name])
                    if name in r["ratio_all"]:
                        runs += f" (to {r['baseline']}: {', '.join(f'{x:.2f}' for x in r['ratio_all'][name])})"
                    print(f"| {r['row']} / {name} | {r['what']} | {rate:.1f} | {runs} | {r['peak_rss_mb']} "
                          f"| {r['load_s']} |")
            elif "ratio" in r:  # a paired row: both ways, and each pair's ratio
                print(f"| {r['row']} | {r['what']} | {r['tok_s']:.1f} vs {r['tok_s_other']:.1f} "
                      f"| ratios {', '.join(f'{x:.2f}' for x in r['ratio_all'])} | {r['peak_rss_mb']} | {r['load_s']} |")
            else:
                print(f"| {r['row']} | {r['what']} | {r['tok_s']:.1f} | {', '.join(f'{x:.1f}' for x in r['tok_s_all'])} "
                      f"| {r['peak_rss_mb']} | {r['load_s']} |")
        print("\n| ratio | value | target | met |")
        print("|---|---|---|---|")
        for ratio in RATIOS:
            value = ratio_value(ratio, by_row)
            if value is None:
                continue
            ok = meets(value, ratio.target)
            ratios.append({"model": model, "ratio": ratio.name, "value": round(value, 3), "target": ratio.target,
                           "met": ok})
            print(f"| {ratio.name} | {value:.2f}x | {ratio.target} | {'yes' if ok else 'NO'} |")
    return ratios


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated model keys")
    p.add_argument("--rows", default=",".join(r.name for r in ROWS), help="comma-separated row names")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3, help="timed calls after one warm-up (median reported)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--warmup-tokens", type=int, default=16, help="new tokens of the untimed warm-up call")
    p.add_argument("--vllm-python", type=Path, default=VLLM_PYTHON)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                   help="print one table from earlier result files (rows run in separate invocations) and write --out")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0

    if args.merge:
        parts = [json.loads(path.read_text()) for path in args.merge]
        results = [r for part in parts for r in part["results"]]
        models = list(dict.fromkeys(r["model"] for r in results))
        ratios = print_table(results, models)
        merged = {"config": {"merged_from": [str(p) for p in args.merge], "parts": [x["config"] for x in parts]},
                  "results": results, "ratios": ratios}
        args.out.write_text(json.dumps(merged, indent=2) + "\n")
        print(f"\nwritten {args.out}")
        return 0
    models, wanted = args.models.split(","), args.rows.split(",")
    unknown = set(wanted) - {r.name for r in ROWS}
    if unknown:
        p.error(f"unknown rows {sorted(unknown)}; known: {[r.name for r in ROWS]}")
    results = []
    for model in models:
        for row in [r for r in ROWS if r.name in wanted]:
            t0 = time.time()
            results.append(run_row(row, model, args))
            print(f"[{model} {row.name}] {time.time() - t0:.0f}s: {results[-1]}", file=sys.stderr, flush=True)
    ratios = print_table(results, models)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    config = {"problem": PROBLEM_ID, "point": POINT, "n": args.n, "new_tokens": args.new_tokens,
              "repeats": args.repeats, "warmup_tokens": args.warmup_tokens, "temperature": args.temperature, "command": " ".join(sys.argv)}
    args.out.write_text(json.dumps({"config": config, "results": results, "ratios": ratios}, indent=2) + "\n")
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":  # vLLM starts its workers with spawn
    sys.exit(main())
