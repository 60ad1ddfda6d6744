"""The oracle-located Table 5 (``cpu-oracle``): ProcessBench's labelled solutions as base responses.

Real data (../shared/data/processbench), the real reference checker, smollm2 on HF for the branches.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prm_app.experiments.config import load_config

CONFIG = Path(__file__).resolve().parents[1] / "prm_app" / "experiments" / "configs" / "cpu-oracle.toml"


def _small(tmp_path: Path, name: str, shared_data: Path) -> Path:
    """cpu-oracle on 2 items, smollm2 on HF, 2 branches of 12 tokens, data paths made absolute."""
    text = CONFIG.read_text()
    for old, new in [('out_dir = "results"', f'out_dir = "{tmp_path / name}"'),
                     ('model = "qwen2.5-coder-0.5b"', 'model = "smollm2-135m"'), ('backend = "vllm"', 'backend = "hf"'),
                     ("backend_options = { max_model_len = 2048, kv_cache_memory_bytes = 4294967296 }", ""),
                     ('"../shared/data/processbench/gsm8k.json"', f'"{shared_data / "processbench" / "gsm8k.json"}"'),
                     ('reference_data = "../shared/data"', f'reference_data = "{shared_data}"\nlimit = 2'),
                     ("n = 10", "n = 2"), ("ks = [1, 10]", "ks = [1, 2]"), ("max_new_tokens = 512", "max_new_tokens = 12")]:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def _records(run: Path) -> dict[str, list[dict]]:
    """Every journal of a run without wall times, by file name."""
    return {str(p.relative_to(run)): [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                                      for line in p.read_text().splitlines()]
            for p in sorted(run.glob("*.jsonl")) + sorted(run.glob("insertion/*.jsonl"))}


@pytest.mark.parametrize("change, message", [
    ({"data": {"source": "problems", "path": "x.jsonl", "min_label": None, "reference_data": None}, "step_mode": "line"},
     "insertion point 'oracle' cuts at a labelled first error, so data.source must be 'processbench'"),
    ({"data": {"reference_data": None}}, "source 'processbench' needs reference_data"),
    ({"data": {"source": "problems", "reference_data": None}}, "min_label: only for source 'processbench'"),
    ({"step_mode": "line"}, "step_mode must be 'paragraph'"),
])
def test_oracle_config_errors_name_the_field(change, message):
    from prm_app.experiments.config import ExperimentConfig

    raw = load_config("cpu-oracle").model_dump()
    for key, value in change.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    with pytest.raises(ValueError, match=message):
        ExperimentConfig.model_validate(raw)


def test_cpu_oracle_selects_the_59_gsm8k_solutions_labelled_at_paragraph_4_or_later(shared_data):
    from prm_app.experiments.dataset import given_solutions, select_problems

    config = load_config("cpu-oracle")
    spec = config.data.model_copy(update={"path": str(shared_data / "processbench" / "gsm8k.json"),
                                          "reference_data": str(shared_data)})
    problems, given = select_problems(spec), given_solutions(spec)
    assert len(problems) == len(given) == 59 and all(given[p.id].label >= 3 for p in problems)
    assert all(p.answer is not None and p.solution for p in problems)  # gold answer and worked solution found


def test_oracle_chain_cuts_at_the_label_and_resumes_with_identical_records(tmp_path, shared_data, killed_after):
    """Two ProcessBench items through the whole chain; a run killed after three branch sets and resumed
    writes what an unbroken run writes; the oracle-line keeps exactly the paragraphs before the label."""
    import prm_app.experiments.insertion as insertion
    from prm_app.experiments.chain import run_chain
    from prm_app.experiments.dataset import read_items
    from prm_app.experiments.resources import Resources
    from prm_app.experiments.table import aggregate
    from prm_fire.generators import make_generator

    generator = make_generator("hf", "smollm2-135m")
    clean = load_config(_small(tmp_path, "clean", shared_data))
    run_chain(clean, resources=Resources(clean, generator=generator), progress=False)

    broken = load_config(_small(tmp_path, "broken", shared_data))
    with killed_after(insertion, "append_journal", 3):  # dies between two branch-set records
        run_chain(broken, resources=Resources(broken, generator=generator), progress=False)
    run_chain(broken, resources=Resources(broken, generator=generator), progress=False)
    assert _records(broken.run_dir) == _records(clean.run_dir)

    records = _records(clean.run_dir)
    assert all(a["tokens"] == 0 for a in records["attempts.jsonl"])  # nothing sampled in stage 1
    items = read_items(clean)
    assert items and all(i.label_index is not None and i.label_index >= 3 and i.author for i in items)
    oracle = {r["item_id"]: r["kept_steps"] for r in records["insertion/oracle.jsonl"]}
    assert oracle == {i.problem.id: i.label_index for i in items}
    prm = {r["item_id"]: r["kept_steps"] for r in records["insertion/prm.jsonl"]}
    assert prm == {i.problem.id: i.first_error_index for i in items}
    tree = json.loads(next((clean.run_dir / "trees").glob("*.json")).read_text())
    assert "processbench:" in json.dumps(tree)  # the response's origin names who wrote it
    table = aggregate(clean)
    assert {g.method for g in table.located} == {"regular", "fire"}
    assert sum(g.items for g in table.located if g.method == "fire") == len(items)
