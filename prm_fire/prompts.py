"""The prompt a problem is asked with (the FIRE paper's "Please reason step by step" prompt)."""

from __future__ import annotations

from prm_fire.records import Message
from prm_fire.problems import Problem

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def build_messages(problem: Problem, *, instruction: str = INSTRUCTION, system: str | None = None) -> list[Message]:
    """Chat messages for ``problem``: an optional system message, then question + instruction.

    >>> p = Problem(id="t/1", question="What is 2 + 3?", answer="5", source="builtin")
    >>> build_messages(p)[-1].content
    'What is 2 + 3?\\nPlease reason step by step, and put your final answer within \\\\boxed{}.'
    """
    user = f"{problem.question}\n{instruction}" if instruction else problem.question
    head = [Message(role="system", content=system)] if system else []
    return [*head, Message(role="user", content=user)]
