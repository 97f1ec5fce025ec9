"""Answers from a tiny random Qwen2-VL: order, batching, seeded sampling, the caller's RNG."""

from __future__ import annotations

import pytest
import torch

from rs_pipeline.core.models.qwen2vl import (
    TinyQwen2VLSpec,
    build_tiny_qwen2vl,
    default_tokenizer_corpus,
    train_tokenizer,
)
from rs_pipeline.core.sources.synthrs import render_tile
from rs_pipeline.core.vlm.generate import greedy_answers, sampled_answers
from rs_pipeline.core.vlm.questions import EvalQuestion, question_id

TOKENS = 4


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_qwen2vl(TinyQwen2VLSpec(), train_tokenizer(default_tokenizer_corpus()))


@pytest.fixture(scope="module")
def questions() -> list[EvalQuestion]:
    # Texts of different lengths and one larger tile, so batches need left padding; one
    # greyscale image, which must be converted to RGB.
    asks = [
        (0, "farmland", 64, "How many trees are in this image?"),
        (1, "harbor", 96, "Is there a boat in this image?"),
        (2, "airport", 64, "What type of scene is shown in this image?"),
    ]
    out = []
    for i, (seed, scene, size, text) in enumerate(asks):
        image = render_tile(seed, scene, size)[0]
        image = image.convert("L") if i == 2 else image
        qid = question_id(benchmark="t", sample_id=f"s{i}", text=text)
        out.append(EvalQuestion(qid, "t", "count", f"s{i}", image, text, "2"))
    return out


def test_one_greedy_answer_per_question(tiny, questions):
    answers = greedy_answers(*tiny, questions, max_new_tokens=TOKENS)
    assert len(answers) == len(questions)
    assert all(isinstance(a, str) and a == a.strip() for a in answers)


def test_greedy_is_deterministic_and_unchanged_by_batching(tiny, questions):
    batched = greedy_answers(*tiny, questions, max_new_tokens=TOKENS, batch_size=3)
    single = greedy_answers(*tiny, questions, max_new_tokens=TOKENS, batch_size=1)
    assert batched == single
    assert greedy_answers(*tiny, questions, max_new_tokens=TOKENS, batch_size=3) == batched


def test_no_questions_no_answers(tiny):
    assert greedy_answers(*tiny, [], max_new_tokens=TOKENS) == []


def test_sampling_gives_n_answers_per_question(tiny, questions):
    answers = sampled_answers(*tiny, questions, n=3, max_new_tokens=TOKENS, batch_size=2)
    assert [len(a) for a in answers] == [3, 3, 3]


def test_same_seed_samples_the_same_answers(tiny, questions):
    first = sampled_answers(*tiny, questions, n=2, seed=5, max_new_tokens=TOKENS)
    assert sampled_answers(*tiny, questions, n=2, seed=5, max_new_tokens=TOKENS) == first


def test_another_seed_samples_other_answers(tiny, questions):
    first = sampled_answers(*tiny, questions, n=2, seed=5, max_new_tokens=TOKENS)
    # A random 4k-token model sampled at 0.85 over 4 tokens: a repeat is all but impossible.
    assert sampled_answers(*tiny, questions, n=2, seed=6, max_new_tokens=TOKENS) != first


def test_callers_rng_state_is_untouched(tiny, questions):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    sampled_answers(*tiny, questions[:2], n=2, max_new_tokens=TOKENS)
    greedy_answers(*tiny, questions[:2], max_new_tokens=TOKENS)
    assert torch.equal(torch.get_rng_state(), before)


def test_models_train_flag_is_restored(tiny, questions):
    model, processor = tiny
    model.train()
    try:
        greedy_answers(model, processor, questions[:1], max_new_tokens=TOKENS)
        assert model.training
    finally:
        model.eval()


def test_sampling_settings_out_of_range_say_what_to_set(tiny, questions):
    with pytest.raises(ValueError, match="set n >= 1"):
        sampled_answers(*tiny, questions, n=0)
    with pytest.raises(ValueError, match="set top_p in"):
        sampled_answers(*tiny, questions, n=1, top_p=0.0)
