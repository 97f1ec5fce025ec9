"""Answers from a VLM to evaluation questions: greedy (one each) or sampled (n each, seeded).

Questions go through `chat.prompt_text`, the way the model was taught, batched with left
padding so every row continues from the right edge; only the new tokens are decoded. Sampling
seeds each batch from the caller's seed and the batch's question ids inside a forked RNG, so
answers repeat run to run and the caller's RNG does not move. The batch's seed depends on which
questions share it, so sampled answers change with `batch_size`; greedy answers do not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from rs_pipeline.core.seeds import seed_from
from rs_pipeline.core.vlm.chat import prompt_text
from rs_pipeline.core.vlm.questions import EvalQuestion


def _check_positive(where: str, **values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{where}: set {name} >= 1, got {value}")


def _batch_seed(seed: int, batch: Sequence[EvalQuestion]) -> int:
    """A seed from the caller's seed and the batch's qids: the same batch draws the same."""
    # The top 63 bits, as the captioner does: torch.manual_seed wants a non-negative int64.
    return seed_from(seed, *(q.qid for q in batch)) >> 1


def _generate(
    model,
    processor,
    batch: Sequence[EvalQuestion],
    *,
    sampling: dict | None,
    seed: int,
    max_new_tokens: int,
    device: str,
) -> list[list[str]]:
    """Decoded new text per question, `num_return_sequences` rows each (1 when greedy)."""
    images = [q.image if q.image.mode == "RGB" else q.image.convert("RGB") for q in batch]
    inputs = processor(
        text=[prompt_text(processor, q.text) for q in batch],
        images=images,
        padding=True,
        padding_side="left",  # whatever the checkpoint's default, generate needs left
        return_tensors="pt",
    ).to(device)
    kwargs: dict = dict(
        max_new_tokens=max_new_tokens,
        pad_token_id=processor.tokenizer.pad_token_id,
        **(sampling or {"do_sample": False}),
    )
    per_question = kwargs.get("num_return_sequences", 1)
    cuda = str(device).startswith("cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    rng_devices = [torch.device(device).index or 0] if cuda else []
    with torch.inference_mode(), autocast, torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(_batch_seed(seed, batch))
        generated = model.generate(**inputs, **kwargs)  # (B * per_question, T + new)
    new_tokens = generated[:, inputs["input_ids"].shape[1] :]  # (B * per_question, new)
    texts = [
        t.strip() for t in processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    ]
    # generate returns each input's sequences next to each other: rows i*n .. i*n + n - 1.
    return [texts[i * per_question : (i + 1) * per_question] for i in range(len(batch))]


def _answer_all(
    model, processor, questions: Sequence[EvalQuestion], *, batch_size: int, device: str, **kw
) -> list[list[str]]:
    """Every question's answers, batch by batch, with the model in eval mode on `device`."""
    was_training = model.training
    # Module.to moves in place (a no-op where it already is), as the captioner does; the
    # train/eval flag is put back, so evaluating mid-training does not switch dropout off.
    model.to(device).eval()
    try:
        out: list[list[str]] = []
        for start in range(0, len(questions), batch_size):
            batch = questions[start : start + batch_size]
            out += _generate(model, processor, batch, device=device, **kw)
        return out
    finally:
        model.train(was_training)


def greedy_answers(
    model,
    processor,
    questions: Sequence[EvalQuestion],
    *,
    max_new_tokens: int = 12,
    batch_size: int = 16,
    device: str = "cpu",
) -> list[str]:
    """One greedy answer per question, in question order."""
    _check_positive("greedy_answers", max_new_tokens=max_new_tokens, batch_size=batch_size)
    rows = _answer_all(
        model,
        processor,
        questions,
        batch_size=batch_size,
        device=device,
        sampling=None,
        seed=0,  # greedy draws nothing; the forked RNG is seeded only for uniformity
        max_new_tokens=max_new_tokens,
    )
    return [r[0] for r in rows]


def sampled_answers(
    model,
    processor,
    questions: Sequence[EvalQuestion],
    *,
    n: int,
    temperature: float = 0.85,
    top_p: float = 0.95,
    seed: int = 0,
    max_new_tokens: int = 12,
    batch_size: int = 16,
    device: str = "cpu",
) -> list[list[str]]:
    """`n` sampled answers per question (nucleus sampling, no top-k), in question order."""
    _check_positive("sampled_answers", n=n, max_new_tokens=max_new_tokens, batch_size=batch_size)
    if not temperature > 0:
        raise ValueError(f"sampled_answers: set temperature > 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"sampled_answers: set top_p in (0, 1], got {top_p}")
    # Explicit top_k=0: Qwen2-VL-Instruct's generation config ships top_k=1, i.e. greedy.
    sampling = dict(
        do_sample=True, temperature=temperature, top_p=top_p, top_k=0, num_return_sequences=n
    )
    return _answer_all(
        model,
        processor,
        questions,
        batch_size=batch_size,
        device=device,
        sampling=sampling,
        seed=seed,
        max_new_tokens=max_new_tokens,
    )
