"""The paper's VQA answer matching: a lenient substring rule over squashed, lower-cased text.

ScoreRS (arXiv 2503.00743) scores a reply by pulling the answer out of any reasoning
(`</think>`) and `<answer>` tags, squashing it (no whitespace, cut at the first `.` and `,`,
lower case) and counting it right when it is a substring of the reference squashed the same
way. The rule is lenient on purpose and kept as published, so numbers compare with the paper:
a partial prediction counts ("tank" is right for "storage tanks", "top" for "top left"), while a
different spelling does not ("3" is wrong for "three"). This is not `pairs.vqa.is_correct`, the
strict rule that decides which model answers become rejected preference sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

THINK_END = "</think>"
ANSWER_START, ANSWER_END = "<answer>", "</answer>"


class ScoredQuestion(Protocol):
    """What accuracy needs of a question: its type and reference (EvalQuestion, pairs' Question)."""

    @property
    def qtype(self) -> str: ...

    @property
    def reference(self) -> str: ...


def _squash(text: str) -> str:
    """All whitespace removed, lower case: "Storage Tanks" -> "storagetanks"."""
    return "".join(text.split()).lower()


def extract_answer(reply: str) -> str:
    """The reply's answer: after the last `</think>`, inside `<answer>` tags, squashed and cut.

    With tags, the last `<answer>` opening wins (an earlier one may be quoted in reasoning that
    had no `</think>`); an unclosed tag runs to the end of the reply.
    """
    text = reply.rsplit(THINK_END, 1)[-1]
    if ANSWER_START in text:
        text = text.rsplit(ANSWER_START, 1)[-1].split(ANSWER_END, 1)[0]
    text = "".join(text.split())
    return text.split(".", 1)[0].split(",", 1)[0].lower()


def is_correct(reply: str, reference: str) -> bool:
    """Whether the reply's extracted answer is a substring of the squashed reference."""
    prediction = extract_answer(reply)
    # The empty string is a substring of every reference, so a blank reply (or one that is only
    # punctuation, like "." or ", yes") would otherwise be right for every question.
    if not prediction:
        return False
    return prediction in _squash(reference)


def accuracy_by_type(
    questions: Sequence[ScoredQuestion], replies: Sequence[str]
) -> dict[str, float]:
    """`vqa_<qtype>` accuracy per question type (sorted) and `vqa_all`; {} for no questions."""
    if len(questions) != len(replies):
        raise ValueError(
            f"accuracy_by_type: got {len(questions)} questions but {len(replies)} replies; "
            "pass exactly one reply per question, in question order"
        )
    hits: dict[str, list[bool]] = {}
    for question, reply in zip(questions, replies, strict=True):
        hits.setdefault(question.qtype, []).append(is_correct(reply, question.reference))
    if not hits:
        return {}
    out = {f"vqa_{qtype}": sum(h) / len(h) for qtype, h in sorted(hits.items())}
    every = [h for per_type in hits.values() for h in per_type]
    out["vqa_all"] = sum(every) / len(every)
    return out
