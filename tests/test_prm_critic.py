"""prm_models/critic.py: the prompted critic's parser, vote and one run on the real smollm2-135m."""

from __future__ import annotations

import pytest

from prm_fire.problems import load_processbench
from prm_models import PRMS, make_prm
from prm_models.critic import DIRECT_PREFIX, CriticPRM, critic_messages, majority, parse_verdict

# (reply as a model writes it, number of steps, opened by DIRECT_PREFIX, parsed index)
REPLIES = [
    ("2}.\n\n**Explanation:** paragraph 2 multiplies instead of dividing.", 5, True, 2),
    ("-1}", 4, True, -1),
    ("paragraph_3}", 6, True, 3),
    (" 1 }\n<paragraph_1> is wrong", 3, True, 1),
    ("7}", 5, True, None),  # past the last step
    ("}", 5, True, None),
    ("Paragraph 0 is fine. Paragraph 1 computes 16 - 3 - 4 = 10, which is wrong.\n\nThe answer is \\boxed{1}.",
     5, False, 1),
    ("All the paragraphs are correct, so \\boxed{-1}.", 5, False, -1),
    ("First guess \\boxed{1}, but on review \\boxed{3}", 5, False, 3),  # the last box counts
    ("The error is in paragraph 2.", 5, False, None),  # no box: not parsed
]


@pytest.mark.parametrize(("reply", "n_steps", "opened", "expected"), REPLIES)
def test_parse_verdict(reply: str, n_steps: int, opened: bool, expected: int | None) -> None:
    assert parse_verdict(reply, n_steps, opened=opened) == expected


@pytest.mark.parametrize(
    ("votes", "expected"),
    [([1, 1, 2], 1), ([2, 1, 1, 2], 1), ([-1, -1, 3], -1), ([-1, 3], 3), ([None, None], None), ([None, 4], 4)],
)
def test_majority_breaks_ties_toward_the_earliest_step(votes: list[int | None], expected: int | None) -> None:
    assert majority(votes) == expected


def test_the_prompt_numbers_the_steps_from_zero(shared_data) -> None:
    item = load_processbench(shared_data / "processbench" / "gsm8k.json", limit=1)[0]
    (message,) = critic_messages(item.problem, item.steps, "direct")
    assert item.problem.question in message.content
    assert f"<paragraph_0>\n{item.steps[0]}\n</paragraph_0>" in message.content
    assert f"<paragraph_{len(item.steps) - 1}>" in message.content and "\\boxed{-1}" in message.content


@pytest.fixture(scope="module")
def smollm2():
    from prm_fire.generators import make_generator

    return make_generator("hf", "smollm2-135m")


def test_a_critic_run_on_a_real_model_votes_over_k_replies(shared_data, smollm2) -> None:
    assert PRMS.get("critic") is CriticPRM
    item = load_processbench(shared_data / "processbench" / "gsm8k.json", limit=1)[0]
    critic = make_prm("critic", {"k": 3, "max_new_tokens": 6, "seed": 1}, generator=smollm2)
    scored = critic.score(item.problem, item.steps)
    assert len(scored.votes) == len(scored.replies) == 3 and scored.model == "smollm2-135m"
    assert all(reply.startswith(DIRECT_PREFIX) for reply in scored.replies)
    assert scored.votes == [parse_verdict(r[len(DIRECT_PREFIX):], len(item.steps), opened=True) for r in scored.replies]
    assert scored.verdict == majority(scored.votes)
    expected = -1 if scored.verdict is None else scored.verdict
    assert scored.first_error_index == (None if expected == -1 else expected)
    assert scored.decided == (scored.verdict is not None) and 0 < scored.tokens_generated <= 18
    again = critic.score(item.problem, item.steps)  # seeded: the same replies
    assert again.replies == scored.replies


def test_scoring_many_solutions_in_one_call_gives_each_its_own_replies(shared_data, smollm2) -> None:
    items = load_processbench(shared_data / "processbench" / "gsm8k.json", limit=3)
    critic = make_prm("critic", {"k": 2, "max_new_tokens": 4, "seed": 2}, generator=smollm2)
    together = critic.score_many([(item.problem, item.steps) for item in items])
    alone = [critic.score(item.problem, item.steps) for item in items]
    assert [s.replies for s in together] == [s.replies for s in alone]  # hf: exact, per-reply seeds
    assert [s.scores for s in together] == [s.scores for s in alone]
    assert len({s.seconds for s in together}) == 1  # each solution's share of the one call


def test_processbench_in_batches_records_what_one_by_one_does_and_resumes(shared_data, smollm2, tmp_path) -> None:
    from prm_app.evaluation.processbench import RunHeader, evaluate

    items = load_processbench(shared_data / "processbench" / "gsm8k.json", limit=5)
    critic = make_prm("critic", {"k": 2, "max_new_tokens": 4}, generator=smollm2)
    header = RunHeader(prm="critic", options={"k": 2, "max_new_tokens": 4}, data="gsm8k")
    one = evaluate(critic, items, tmp_path / "one.jsonl", header)
    evaluate(critic, items[:2], tmp_path / "batched.jsonl", header, batch=3)  # a run stopped after 2 items
    batched = evaluate(critic, items, tmp_path / "batched.jsonl", header, batch=3)  # resumes with the other 3
    assert [(r.id, r.scores, r.record["replies"]) for r in batched] == [(r.id, r.scores, r.record["replies"]) for r in one]
    assert len((tmp_path / "batched.jsonl").read_text().splitlines()) == 1 + len(items)  # header + one line each


def test_the_boxed_mode_opens_the_reply_with_a_bare_box(shared_data, smollm2) -> None:
    from prm_models.critic import PREFIXES

    item = load_processbench(shared_data / "processbench" / "gsm8k.json", limit=1)[0]
    critic = make_prm("critic", {"mode": "boxed", "k": 1, "temperature": 0, "max_new_tokens": 4}, generator=smollm2)
    scored = critic.score(item.problem, item.steps)
    (reply,) = scored.replies
    assert PREFIXES["boxed"] == "\\boxed{" and reply.startswith("\\boxed{") and not reply.startswith(DIRECT_PREFIX)
    assert scored.votes == [parse_verdict(reply[len("\\boxed{"):], len(item.steps), opened=True)]
