"""Evaluation questions: seeded SynthRS VQA and scene classification on benchmarks."""

from __future__ import annotations

import pytest
from PIL import Image

from rs_pipeline.core.evaluation.benchmarks import Benchmark
from rs_pipeline.core.evaluation.metrics import class_prompts
from rs_pipeline.core.vlm.questions import (
    question_id,
    scene_questions,
    synthrs_vqa_questions,
)
from rs_pipeline.core.vocabulary import SCENE_CLASSES

CLOSED = {"count", "presence", "class", "position"}


def _key(qs) -> list[tuple]:
    return [(q.qid, q.qtype, q.sample_id, q.text, q.reference, q.image.tobytes()) for q in qs]


def test_same_seed_asks_the_same_questions_about_the_same_tiles():
    first = synthrs_vqa_questions(count=4, seed=7, size=32)
    assert _key(first) == _key(synthrs_vqa_questions(count=4, seed=7, size=32))


def test_another_seed_renders_other_tiles():
    first = synthrs_vqa_questions(count=4, seed=7, size=32)
    other = synthrs_vqa_questions(count=4, seed=8, size=32)
    assert [q.image.tobytes() for q in first] != [q.image.tobytes() for q in other]


def test_only_closed_questions_up_to_the_cap_per_tile():
    qs = synthrs_vqa_questions(count=12, seed=3, size=32, max_per_image=2, name="held")
    assert qs and {q.qtype for q in qs} <= CLOSED
    per_tile: dict[str, int] = {}
    for q in qs:
        per_tile[q.sample_id] = per_tile.get(q.sample_id, 0) + 1
    assert set(per_tile) == {f"held:{i}" for i in range(12)}  # every tile has a class question
    assert max(per_tile.values()) <= 2
    assert all(q.benchmark == "held" for q in qs)


def test_tiles_cycle_through_every_scene_class():
    qs = synthrs_vqa_questions(count=len(SCENE_CLASSES), seed=0, size=32, max_per_image=50)
    refs = {q.reference for q in qs if q.qtype == "class"}
    assert refs == {c.replace("_", " ") for c in SCENE_CLASSES}


def test_qid_is_a_short_hash_of_benchmark_sample_and_text():
    q = synthrs_vqa_questions(count=1, seed=0, size=32)[0]
    assert q.qid == question_id(benchmark=q.benchmark, sample_id=q.sample_id, text=q.text)
    assert len(q.qid) == 16 and q.qid != question_id(
        benchmark="x", sample_id=q.sample_id, text=q.text
    )


def test_a_count_below_one_says_what_to_set():
    with pytest.raises(ValueError, match="set count >= 1"):
        synthrs_vqa_questions(count=0, seed=0)


def _bench(labels: list[int], class_names: dict[str, str] | None = None) -> Benchmark:
    classes = ["dense_residential", "forest", "storage_tanks"]
    images = [Image.new("RGB", (8, 8), (i, 0, 0)) for i in range(len(labels))]
    ids = [f"img{i}" for i in range(len(labels))]
    return Benchmark("aid", images, ids, classes, labels, class_prompts(classes, class_names))


def test_scene_prompt_lists_the_class_phrases_in_class_order():
    qs = scene_questions(_bench([0, 1, 2]))
    assert {q.text for q in qs} == {
        "What type of scene is shown in this image? Answer with one of: "
        "dense residential, forest, storage tanks."
    }
    assert {q.qtype for q in qs} == {"scene"}


def test_references_are_the_class_phrases_configured_for_prompts():
    qs = scene_questions(_bench([2, 0, 1], {"forest": "woodland"}))
    assert [(q.sample_id, q.reference) for q in qs] == [
        ("img1", "dense residential"),
        ("img2", "woodland"),
        ("img0", "storage tanks"),
    ]
    assert "one of: dense residential, woodland, storage tanks." in qs[0].text


def test_max_images_takes_classes_in_turn():
    # Labels by image: three of class 0 first, then 1, then 2.
    qs = scene_questions(_bench([0, 0, 0, 1, 1, 2]), max_images=4)
    assert [q.sample_id for q in qs] == ["img0", "img3", "img5", "img1"]


def test_a_benchmark_without_classes_has_no_scene_questions():
    bench = Benchmark("captions", [Image.new("RGB", (8, 8))], ["a"], texts=["x"], text_to_image=[0])
    assert scene_questions(bench) == []
