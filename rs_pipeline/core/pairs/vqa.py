"""VQA preference pairs from SynthRS ground truth.

Close-ended questions (count, presence, class, position) have exact answers: a model's wrong
answer becomes the rejected side against the reference, and questions the model already
answers right are filtered out (they teach the scorer nothing). Open-ended questions pair a
reference description against the model's answer.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rs_pipeline.core.captions.base import SampleView
from rs_pipeline.core.seeds import seed_from
from rs_pipeline.core.sources.synthrs import TileAnnotation
from rs_pipeline.core.vocabulary import NUMBER_WORDS, OBJECT_KINDS, as_words, noun, number_word

# Kinds a presence question may ask about when they are absent: all but bridges and umbrellas,
# as first chosen (the seeded draw indexes this tuple, so it keeps its order).
ASKABLE_KINDS = tuple(k for k in OBJECT_KINDS if k not in ("bridge", "umbrella"))


@dataclass(frozen=True)
class Question:
    """One question about one image, with its reference answer."""

    sample_id: str
    qtype: str  # "count" | "presence" | "class" | "position" | "open"
    text: str
    reference: str

    @property
    def closed(self) -> bool:
        """Close-ended questions have one exact answer."""
        return self.qtype != "open"


def _describe(ann: TileAnnotation) -> str:
    parts = []
    for kind, n in ann.counts().items():
        colours = sorted({o.color for o in ann.objects if o.kind == kind})
        parts.append(f"{number_word(n)} {' and '.join(colours)} {noun(kind, n)}")
    scene = as_words(ann.scene_class)
    return f"A {scene} scene with " + ", ".join(parts) + "." if parts else f"A {scene} scene."


def questions_for(
    sid: str, ann: TileAnnotation | None, max_per_image: int, seed: int = 0
) -> list[Question]:
    """Up to `max_per_image` questions with ground-truth answers; none without annotation."""
    if ann is None:
        return []
    counts = ann.counts()
    qs = [
        Question(
            sid,
            "class",
            text="What type of scene is shown in this image?",
            reference=as_words(ann.scene_class),
        )
    ]
    for kind, n in counts.items():
        qs.append(Question(sid, "count", f"How many {noun(kind, 2)} are in this image?", str(n)))
        qs.append(Question(sid, "presence", f"Is there a {noun(kind, 1)} in this image?", "yes"))
    absent = [k for k in ASKABLE_KINDS if k not in counts]
    rng = random.Random(seed_from(seed, sid, sep="|"))
    if absent:
        kind = rng.choice(absent)
        qs.append(Question(sid, "presence", f"Is there a {noun(kind, 1)} in this image?", "no"))
    unique = Counter((o.color, o.kind) for o in ann.objects)
    for obj in ann.objects:
        if unique[(obj.color, obj.kind)] == 1:
            text = f"Where is the {obj.color} {noun(obj.kind, 1)} in this image?"
            qs.append(Question(sid, "position", text, obj.position))
    if ann.objects:
        qs.append(Question(sid, "open", "Describe the objects in this image.", _describe(ann)))
    rng.shuffle(qs)
    return qs[:max_per_image]


def normalise_answer(text: str) -> str:
    """Lower case, digits for number words, no punctuation: what 'the same answer' means."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    words = [str(NUMBER_WORDS.index(w)) if w in NUMBER_WORDS else w for w in words]
    return " ".join(words)


def is_correct(question: Question, answer: str) -> bool:
    """Exact match after normalisation; yes/no answers may carry an explanation."""
    got, ref = normalise_answer(answer), normalise_answer(question.reference)
    if question.qtype == "presence":
        return got.split(" ")[:1] == [ref]
    return got == ref


class Answerer(Protocol):
    """Answers questions about images (the model whose mistakes become rejected answers)."""

    id: str

    def answer(self, samples: Sequence[SampleView], questions: Sequence[Question]) -> list[str]:
        """One answer per question; `samples` holds every image the questions are about."""
        ...


class PriorAnswerer:
    """A blind baseline: the most common reference answer of each question type.

    It never looks at the image, like the language-prior baselines of VQA; its wrong answers
    are plausible-sounding mistakes, which is what a rejected answer should be.
    """

    id = "prior-answerer/v1"

    def __init__(self, questions: Sequence[Question]) -> None:
        by_type: dict[str, Counter] = {}
        for q in questions:
            by_type.setdefault(q.qtype, Counter())[q.reference] += 1
        # most_common breaks ties by first insertion; sort first so the choice is stable.
        self.prior = {
            t: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for t, c in by_type.items()
        }

    def answer(self, samples: Sequence[SampleView], questions: Sequence[Question]) -> list[str]:
        """The prior answer of each question's type."""
        return [self.prior.get(q.qtype, "") for q in questions]
