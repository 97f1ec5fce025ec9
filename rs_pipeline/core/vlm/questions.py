"""Evaluation questions for a VLM: closed VQA on held-out SynthRS tiles, scene classification.

Each question carries its image and reference answer, and a `qid` stable across runs (a short
sha256 of benchmark, sample and text), so sampled answers can be seeded by question and results
joined by id. Questions are a pure function of their arguments: the same call asks the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from PIL import Image

from rs_pipeline.core.evaluation.benchmarks import Benchmark
from rs_pipeline.core.evaluation.metrics import TEMPLATES
from rs_pipeline.core.pairs.vqa import questions_for
from rs_pipeline.core.seeds import seed_from
from rs_pipeline.core.sources.synthrs import SEED_BITS, render_tile
from rs_pipeline.core.vocabulary import SCENE_CLASSES, as_words

SCENE_QUESTION = "What type of scene is shown in this image? Answer with one of: {options}."
QID_HEX = 16  # 64 bits of sha256: no collision among any realistic number of questions


@dataclass(frozen=True)
class EvalQuestion:
    """One question about one image, with the reference answer it is scored against."""

    qid: str
    benchmark: str
    qtype: str  # "count" | "presence" | "class" | "position" (SynthRS) | "scene" (benchmarks)
    sample_id: str
    image: Image.Image = field(repr=False)  # a repr of pixels helps nobody
    text: str
    reference: str


def question_id(*, benchmark: str, sample_id: str, text: str) -> str:
    """The stable id of a question: the first hex digits of sha256(benchmark|sample_id|text)."""
    key = f"{benchmark}|{sample_id}|{text}".encode()
    return hashlib.sha256(key).hexdigest()[:QID_HEX]


def _question(
    *, benchmark: str, qtype: str, sample_id: str, image: Image.Image, text: str, reference: str
) -> EvalQuestion:
    qid = question_id(benchmark=benchmark, sample_id=sample_id, text=text)
    return EvalQuestion(qid, benchmark, qtype, sample_id, image, text, reference)


def synthrs_vqa_questions(
    *, count: int, seed: int, size: int = 64, name: str = "synthrs-vqa", max_per_image: int = 4
) -> list[EvalQuestion]:
    """Closed questions on `count` held-out SynthRS tiles rendered from `seed`.

    Tiles cycle through SCENE_CLASSES so every class is asked about; up to `max_per_image`
    closed questions (count, presence, class, position) per tile, in `questions_for`'s seeded
    order. Open questions are left out: their references are descriptions, which the
    substring rule of `answers.is_correct` cannot score.
    """
    if count < 1:
        raise ValueError(f"synthrs_vqa_questions: set count >= 1 (tiles to render), got {count}")
    if max_per_image < 1:
        raise ValueError(f"synthrs_vqa_questions: set max_per_image >= 1, got {max_per_image}")
    out: list[EvalQuestion] = []
    for i in range(count):
        scene_class = SCENE_CLASSES[i % len(SCENE_CLASSES)]
        # Its own seed prefix: sources seed tiles from "synthrs-item", so these tiles differ
        # from any training tile even when a training source uses the same seed number.
        tile_seed = seed_from("synthrs-vqa", seed, i, bits=SEED_BITS)
        image, annotation = render_tile(tile_seed, scene_class, size)
        sample_id = f"{name}:{i}"
        # All of a tile's questions, then the closed ones: questions_for shuffles before it
        # truncates, so asking for every question keeps its order and drops only open ones.
        every = questions_for(sample_id, annotation, max_per_image=1_000_000, seed=seed)
        closed = [q for q in every if q.closed][:max_per_image]
        out += [
            _question(
                benchmark=name,
                qtype=q.qtype,
                sample_id=sample_id,
                image=image,
                text=q.text,
                reference=q.reference,
            )
            for q in closed
        ]
    return out


def class_phrases(bench: Benchmark) -> list[str]:
    """How each class is spoken: the phrase in its CLIP prompts, else its name as words.

    `load_benchmark` fills every class's first prompt from the first template with the phrase
    `BenchmarkConfig.class_names` gives (or the folder name as words), so reading it back keeps
    one source of truth for a class's wording.
    """
    prefix, suffix = TEMPLATES[0].split("{c}")
    phrases = []
    for k, name in enumerate(bench.classes):
        prompt = bench.prompts[k][0] if k < len(bench.prompts) and bench.prompts[k] else ""
        inner = len(prompt) - len(prefix) - len(suffix)
        if inner > 0 and prompt.startswith(prefix) and prompt.endswith(suffix):
            phrases.append(prompt[len(prefix) : len(prompt) - len(suffix)])
        else:
            phrases.append(as_words(name))
    return phrases


def balanced_order(labels: list[int], n_classes: int) -> list[int]:
    """Image indices round-robin over classes (each class in index order): any prefix balanced."""
    by_class: list[list[int]] = [[] for _ in range(n_classes)]
    for i, label in enumerate(labels):
        by_class[label].append(i)
    rounds = max((len(c) for c in by_class), default=0)
    return [c[r] for r in range(rounds) for c in by_class if r < len(c)]


def scene_questions(bench: Benchmark, *, max_images: int | None = None) -> list[EvalQuestion]:
    """Scene classification asked as a question with the classes as options; [] without classes.

    Images are taken round-robin over classes, so the first `max_images` stay class-balanced
    (and a larger `max_images` extends a smaller one).
    """
    if not bench.classification:
        return []
    if max_images is not None and max_images < 1:
        raise ValueError(f"scene_questions: set max_images >= 1 or None (all), got {max_images}")
    if len(bench.labels) != len(bench.images):
        raise ValueError(
            f"benchmark {bench.name!r}: {len(bench.labels)} labels for {len(bench.images)} "
            "images; a classification benchmark needs one label per image"
        )
    phrases = class_phrases(bench)
    text = SCENE_QUESTION.format(options=", ".join(phrases))
    order = balanced_order(bench.labels, len(bench.classes))[:max_images]
    return [
        _question(
            benchmark=bench.name,
            qtype="scene",
            sample_id=bench.sample_ids[i],
            image=bench.images[i],
            text=text,
            reference=phrases[bench.labels[i]],
        )
        for i in order
    ]
