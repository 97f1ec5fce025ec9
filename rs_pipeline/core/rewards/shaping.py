"""The paper's RL reward: a format gate, then an accuracy term per reward type.

ScoreRS (arXiv 2503.00743) rewards a policy reply `<think>...</think><answer>...</answer>` with
`overall = w * format + (1 - w) * accuracy`, where accuracy is

- `open_ended`: the learned scorer judges the answer against the reference answer, both on the
  same image and question; the answer earns `1 - exp(-0.2 * (s_answer - s_reference))` when it
  outscores the reference, else nothing;
- `em`: the answer equals the ground truth once lower-cased with whitespace and dots removed;
- `iou`: the answer's boxes overlap the ground truth's (graded by IoU thresholds, below).

Every function here returns the same three keys, `overall`, `format` and `accuracy`: the official
client returns `format`/`accuracy` on one branch and `format_score`/`accuracy_score` on the
other, so a trainer's metrics split in two. As there, a reply that fails the format earns no
accuracy at all (the gate), and the scorer is never asked about it.
"""

from __future__ import annotations

import math
import re

from rs_pipeline.core.answers import ANSWER_END, ANSWER_START, THINK_END

REWARD_TYPES = ("open_ended", "em", "iou")

# Full match, as the official client does (`re.fullmatch`, DOTALL): text before `<think>` or
# after `</answer>` fails the format, so the policy learns to stop at `</answer>`. A trainer
# decoding with special tokens kept must strip them first (TRL and verl skip them by default).
FORMAT_PATTERN = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)

OPEN_ENDED_RATE = 0.2  # the paper's 0.2: a 5-point margin over the reference earns 1 - 1/e

_NUMBER = r"\s*(\d+(?:\.\d+)?)\s*"
# Qwen2-VL `(x1,y1),(x2,y2)` (in <|box_start|>...<|box_end|>), then plain `[x1, y1, x2, y2]`.
_PAIR_BOX = re.compile(rf"\({_NUMBER},{_NUMBER}\)\s*,\s*\({_NUMBER},{_NUMBER}\)")
_LIST_BOX = re.compile(rf"\[{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}\]")
QWEN_GRID = 1000.0  # Qwen2-VL writes boxes on a 0-1000 grid

Box = tuple[float, float, float, float]


def check_reward_type(reward_type: str) -> None:
    """ValueError unless `reward_type` is one this module shapes."""
    if reward_type not in REWARD_TYPES:
        raise ValueError(
            f"unknown reward_type {reward_type!r}; set reward_type to one of {list(REWARD_TYPES)}"
        )


def format_reward(predict: str) -> float:
    """1.0 when the whole reply is `<think>...</think>` then `<answer>...</answer>`, else 0.0."""
    return 1.0 if FORMAT_PATTERN.fullmatch(predict) else 0.0


def answer_text(predict: str) -> str:
    """The reply's answer, stripped: inside `<answer>` tags, else the reply after `</think>`.

    The tag rule of `answers.extract_answer` without its squashing: after the last `</think>`,
    the last `<answer>` opening wins. The official client takes the first `<answer>` match,
    without DOTALL, so a multi-line answer (or one quoted in the reasoning) sends the wrong text.
    """
    text = predict.rsplit(THINK_END, 1)[-1]
    if ANSWER_START in text:
        text = text.rsplit(ANSWER_START, 1)[-1].split(ANSWER_END, 1)[0]
    return text.strip()


def open_ended_accuracy(s_answer: float, s_reference: float) -> float:
    """`1 - exp(-0.2 * margin)` when the answer outscores the reference, else 0.0 (NaN: 0.0)."""
    if not s_answer > s_reference:
        return 0.0
    return 1.0 - math.exp(-OPEN_ENDED_RATE * (s_answer - s_reference))


def _em_normal(text: str) -> str:
    # Every whitespace character goes (the official client drops only spaces, so a newline in
    # an answer made it wrong); every dot goes ("3.5" -> "35"), unlike extract_answer, which
    # cuts at the first dot and would make "3.5" and "3.7" equal.
    return "".join(text.split()).replace(".", "").lower()


def em_accuracy(predict: str, ground_truth: str) -> float:
    """1.0 when the answer equals the ground truth, lower-cased, without whitespace and dots."""
    prediction = _em_normal(answer_text(predict))
    # An empty answer is never right, even against an empty (broken) ground truth.
    return 1.0 if prediction and prediction == _em_normal(ground_truth) else 0.0


def parse_boxes(text: str) -> list[Box]:
    """Boxes in `text`: Qwen2-VL `(x1,y1),(x2,y2)` pairs if any, else `[x1, y1, x2, y2]` lists."""
    found = _PAIR_BOX.findall(text) or _LIST_BOX.findall(text)
    return [tuple(float(v) for v in coords) for coords in found]  # type: ignore[misc]


def _on_one_scale(a: Box, b: Box) -> tuple[Box, Box]:
    """Both boxes on the 0-1000 grid when one is normalised (all coordinates <= 1) and one isn't."""
    a_unit, b_unit = max(a) <= 1.0, max(b) <= 1.0
    if a_unit and not b_unit:
        a = tuple(v * QWEN_GRID for v in a)  # type: ignore[assignment]
    elif b_unit and not a_unit:
        b = tuple(v * QWEN_GRID for v in b)  # type: ignore[assignment]
    return a, b


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two `(x1, y1, x2, y2)` boxes; 0.0 when disjoint or degenerate."""
    a, b = _on_one_scale(a, b)
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _box_grade(iou: float) -> float:
    """The paper's per-box grade: 0.5 past IoU 0.5, plus 0.1 / 0.2 / 0.5 past 0.6 / 0.7 / 0.8."""
    hit = 0.5 if iou > 0.5 else 0.0
    bonus = 0.5 if iou > 0.8 else 0.2 if iou > 0.7 else 0.1 if iou > 0.6 else 0.0
    return hit + bonus


def iou_accuracy(predict: str, ground_truth: str) -> float:
    """Mean per-box grade over boxes paired in order; 0.0 when the box counts differ.

    One box grades as the official client does (1.0 past IoU 0.8). With several, the official
    client adds the 0.5 bonus per box undivided, so two good boxes earned 1.5; here every box
    is graded alike and averaged, which keeps the reward in [0, 1].
    """
    truth = parse_boxes(ground_truth)
    if not truth:
        raise ValueError(
            f"iou reward: no box in ground truth {ground_truth[:80]!r}; write it as "
            "[x1, y1, x2, y2] or (x1,y1),(x2,y2), or set reward_type to 'em' or 'open_ended'"
        )
    predicted = parse_boxes(answer_text(predict))
    if len(predicted) != len(truth):
        return 0.0
    grades = [_box_grade(box_iou(p, t)) for p, t in zip(predicted, truth, strict=True)]
    return sum(grades) / len(grades)


def rule_accuracy(*, predict: str, ground_truth: str, reward_type: str) -> float:
    """The rule-based accuracy (`em`, `iou`); `open_ended` needs a scorer (`shape_open_ended`)."""
    if reward_type == "em":
        return em_accuracy(predict, ground_truth)
    if reward_type == "iou":
        return iou_accuracy(predict, ground_truth)
    check_reward_type(reward_type)
    raise ValueError(f"reward_type {reward_type!r} needs scorer scores; call shape_open_ended")


def shape(*, format_score: float, accuracy: float, format_weight: float) -> dict[str, float]:
    """`overall = w * format + (1 - w) * accuracy`, with the two parts, as one record."""
    if not 0.0 <= format_weight <= 1.0:
        raise ValueError(f"format_weight must be in [0, 1], got {format_weight}; set it so")
    overall = format_weight * format_score + (1.0 - format_weight) * accuracy
    return {"overall": overall, "format": format_score, "accuracy": accuracy}


def shape_rule(
    *, predict: str, ground_truth: str, reward_type: str, format_weight: float
) -> dict[str, float]:
    """The whole reward for `em` / `iou`: the format gate, then the rule."""
    format_score = format_reward(predict)
    # The rule runs even on a malformed reply, so a broken ground truth fails on every row.
    accuracy = rule_accuracy(predict=predict, ground_truth=ground_truth, reward_type=reward_type)
    if not format_score:
        accuracy = 0.0
    return shape(format_score=format_score, accuracy=accuracy, format_weight=format_weight)


def shape_open_ended(
    *, format_score: float, scores: tuple[float, float] | None, format_weight: float
) -> dict[str, float]:
    """The whole reward for `open_ended` from (answer, reference) scores; None: no accuracy."""
    accuracy = 0.0
    if format_score and scores is not None:
        accuracy = open_ended_accuracy(scores[0], scores[1])
    return shape(format_score=format_score, accuracy=accuracy, format_weight=format_weight)
