"""The paper's reward as a TRL `GRPOTrainer` reward function, over any scorer.

GRPOTrainer (trl 1.13, `_calculate_rewards`) calls each reward function as
`fn(prompts=..., completions=..., completion_ids=..., trainer_state=..., log_extra=...,
log_metric=..., **dataset_columns)`, every column a list with one entry per completion, and logs
it under `fn.__name__`. Completions are strings, or (conversational prompts) lists of message
dicts whose last one is the assistant's reply. TRL itself is not imported: the adapter only
speaks its calling convention.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rs_pipeline.core.rewards.compute import first_image
from rs_pipeline.core.rewards.shaping import (
    answer_text,
    check_reward_type,
    format_reward,
    shape,
    shape_open_ended,
    shape_rule,
)

IMAGE_COLUMNS = ("image", "images")
TRUTH_COLUMNS = ("ground_truth", "solution")
QUESTION_COLUMNS = ("problem", "question")


def message_text(message: Any) -> str:
    """A chat message's (or a plain string's) text; content parts' texts joined."""
    if isinstance(message, str):
        return message
    content = message.get("content") if isinstance(message, Mapping) else None
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(p.get("text") or "" for p in content if isinstance(p, Mapping))
    return ""


def completion_text(completion: Any) -> str:
    """The reply: a plain completion, or the last message of a conversational one."""
    if isinstance(completion, str):
        return completion
    return message_text(completion[-1]) if completion else ""


def _prompt_question(prompt: Any) -> str:
    """The last user turn's text: the question when the dataset has no `problem` column."""
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if isinstance(m, Mapping) and m.get("role") == "user"]
    return message_text(users[-1]) if users else ""


def _column(columns: Mapping[str, Any], names: Sequence[str]) -> list[Any] | None:
    for name in names:
        if columns.get(name) is not None:
            return list(columns[name])
    return None


class ScorerReward:
    """`reward_funcs=[ScorerReward(scorer=...)]`: one overall reward per completion.

    `scorer` is anything with `score(images, texts, questions=None)` (an in-process scorer or a
    `RemoteScorer`). For `open_ended`, the group's answers and their references go to it in one
    call, each distinct (image, reference, question) once; replies that fail the format are not
    scored. `em` / `iou` never touch the scorer. The mean format and accuracy are logged as
    `<name>/format` and `<name>/accuracy` through TRL's `log_metric`.
    """

    def __init__(
        self,
        *,
        scorer: Any,
        reward_type: str = "open_ended",
        format_weight: float = 0.3,
        batch_size: int | None = None,
        name: str = "scorer_reward",
    ) -> None:
        check_reward_type(reward_type)
        shape(format_score=0.0, accuracy=0.0, format_weight=format_weight)  # validates the weight
        self.scorer, self.reward_type = scorer, reward_type
        self.format_weight, self.batch_size = format_weight, batch_size
        self.__name__ = name  # TRL names the reward's logs after it (get_callable_name)

    def __repr__(self) -> str:
        return f"ScorerReward(reward_type={self.reward_type!r}, scorer={self.scorer!r})"

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float]:
        texts = [completion_text(c) for c in completions]
        truths = _column(kwargs, TRUTH_COLUMNS)
        if truths is None or len(truths) != len(texts):
            raise ValueError(
                f"{self.__name__}: the dataset needs a `ground_truth` (or `solution`) column, "
                f"one entry per completion; got columns {sorted(kwargs)}"
            )
        if self.reward_type == "open_ended":
            records = self._open_ended(prompts=prompts, texts=texts, truths=truths, columns=kwargs)
        else:
            records = [
                shape_rule(
                    predict=t,
                    ground_truth=str(g),
                    reward_type=self.reward_type,
                    format_weight=self.format_weight,
                )
                for t, g in zip(texts, truths, strict=True)
            ]
        self._log(kwargs.get("log_metric"), records)
        return [r["overall"] for r in records]

    def _log(self, log_metric: Callable[[str, float], None] | None, records: list[dict]) -> None:
        if log_metric is None or not records:
            return
        for key in ("format", "accuracy"):
            log_metric(f"{self.__name__}/{key}", sum(r[key] for r in records) / len(records))

    def _open_ended(
        self,
        *,
        prompts: Sequence[Any],
        texts: list[str],
        truths: list[Any],
        columns: Mapping[str, Any],
    ) -> list[dict[str, float]]:
        images = _column(columns, IMAGE_COLUMNS)
        if images is None or len(images) != len(texts):
            raise ValueError(
                f"{self.__name__}: open_ended needs an `image` (or `images`) column, one entry "
                f"per completion; got columns {sorted(columns)}"
            )
        questions = _column(columns, QUESTION_COLUMNS) or [_prompt_question(p) for p in prompts]
        formats = [format_reward(t) for t in texts]
        pairs = _ScoringPairs()
        slots = [
            pairs.add(
                image=first_image(images[i]),
                answer=answer_text(text),
                reference=str(truths[i]),
                question=str(questions[i] or "") or None,
            )
            if formats[i]
            else None
            for i, text in enumerate(texts)
        ]
        scores = self._score(pairs)
        return [
            shape_open_ended(
                format_score=f,
                scores=None if s is None else (scores[s[0]], scores[s[1]]),
                format_weight=self.format_weight,
            )
            for f, s in zip(formats, slots, strict=True)
        ]

    def _score(self, pairs: _ScoringPairs) -> list[float]:
        """Every pair in one scorer call (none when every reply failed the format)."""
        if not pairs.texts:
            return []
        extra = {} if self.batch_size is None else {"batch_size": self.batch_size}
        scores = self.scorer.score(pairs.images, pairs.texts, questions=pairs.questions, **extra)
        if len(scores) != len(pairs.texts):
            raise ValueError(f"scorer returned {len(scores)} scores for {len(pairs.texts)} texts")
        return [float(s) for s in scores]


class _ScoringPairs:
    """(image, text, question) pairs to score; a reference shared by a group is added once.

    A reference sits just before the first answer that needs it, so answers to one question
    stay consecutive and a RemoteScorer sends them in one request.
    """

    def __init__(self) -> None:
        self.images: list[Any] = []
        self.texts: list[str] = []
        self.questions: list[str | None] = []
        self._reference_at: dict[tuple[int, str, str | None], int] = {}

    def _append(self, *, image: Any, text: str, question: str | None) -> int:
        self.images.append(image)
        self.texts.append(text)
        self.questions.append(question)
        return len(self.texts) - 1

    def add(
        self, *, image: Any, answer: str, reference: str, question: str | None
    ) -> tuple[int, int]:
        """(answer index, reference index) in the flat lists."""
        # Same image object, reference and question: the same pair, scored once. Images are
        # held by `self.images`, so an id is never reused while the key is alive.
        key = (id(image), reference, question)
        if key not in self._reference_at:
            self._reference_at[key] = self._append(image=image, text=reference, question=question)
        return self._append(image=image, text=answer, question=question), self._reference_at[key]
