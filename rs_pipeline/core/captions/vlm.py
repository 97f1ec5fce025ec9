"""Local VLM captioner: a `transformers` image-text-to-text checkpoint (Qwen2-VL family first).

Images go through the processor's chat template (image placeholder + prompt), batched with left
padding so every row continues from the right edge; only the new tokens are decoded. Greedy
decoding gives one caption per image; `per_image > 1` samples with a seeded RNG so candidates
differ yet repeat run to run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import torch

from rs_pipeline.core.captions.base import Candidate, SampleView
from rs_pipeline.core.prompts import CAPTION_PROMPT
from rs_pipeline.core.seeds import seed_from


class VLMCaptioner:
    """Captions images with a local VLM; `id` is `vlm:{model_name}@{prompt_version}`."""

    def __init__(
        self,
        model,
        processor,
        model_name: str,
        prompt: str = CAPTION_PROMPT,
        prompt_version: str = "p1",
        batch_size: int = 8,
        max_new_tokens: int = 32,
        per_image: int = 1,
        do_sample: bool = False,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        for name, value in (("batch_size", batch_size), ("max_new_tokens", max_new_tokens)):
            if value < 1:
                raise ValueError(f"VLMCaptioner: set {name} >= 1, got {value}")
        if per_image < 1:
            raise ValueError(f"VLMCaptioner: set per_image >= 1, got {per_image}")
        self.model = model.to(device).eval()
        self.processor = processor
        self.model_name = model_name
        self.prompt, self.prompt_version = prompt, prompt_version
        self.batch_size, self.max_new_tokens, self.per_image = batch_size, max_new_tokens, per_image
        # Several greedy candidates would be identical copies, so per_image > 1 always samples.
        self.do_sample = do_sample or per_image > 1
        self.seed, self.device = seed, device
        self.id = f"vlm:{model_name}@{prompt_version}"
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
        ]
        self.prompt_text: str = processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        model_name: str | None = None,
        dtype: torch.dtype | str | None = None,
        **kwargs,
    ) -> VLMCaptioner:
        """A captioner over a local checkpoint folder (never the hub); name defaults to folder."""
        from rs_pipeline.core.models.qwen2vl import load_qwen2vl

        device = kwargs.get("device", "cpu")
        model, processor = load_qwen2vl(path, device=device, dtype=dtype)
        return cls(model, processor, model_name or Path(path).expanduser().name, **kwargs)

    def caption(self, samples: Sequence[SampleView]) -> list[Candidate]:
        """`per_image` candidates per sample, in input order; a sample that fails alone is a row."""
        out: list[Candidate] = []
        for start in range(0, len(samples), self.batch_size):
            out += self._caption_batch(samples[start : start + self.batch_size])
        if out and all(c.status == "failed" for c in out):
            # Every image failing is the model or its setup, not the data: fail loudly.
            raise RuntimeError(f"{self.id}: every image failed; first error: {out[0].error}")
        return out

    def _caption_batch(self, batch: Sequence[SampleView]) -> list[Candidate]:
        try:
            texts = self._generate(batch)
        except (RuntimeError, ValueError, OSError) as exc:  # e.g. CUDA OOM, an unreadable image
            if len(batch) > 1:  # retry alone, so one bad image does not sink its batch
                return [c for s in batch for c in self._caption_batch([s])]
            error = f"{type(exc).__name__}: {exc}"
            return [
                Candidate(batch[0].sample_id, self.id, "", status="failed", error=error)
            ] * self.per_image
        return [
            Candidate(s.sample_id, self.id, texts[i * self.per_image + k])
            for i, s in enumerate(batch)
            for k in range(self.per_image)
        ]

    def _batch_seed(self, batch: Sequence[SampleView]) -> int:
        """A seed from the captioner seed and the batch's ids: same batch, same samples."""
        # The top 63 bits, as these seeds have always been: a non-negative int64 for torch.
        return seed_from(self.seed, *(s.sample_id for s in batch)) >> 1

    def _generate(self, batch: Sequence[SampleView]) -> list[str]:
        """Decoded new text for each sample x candidate, sample-major (per_image rows each)."""
        images = [s.image if s.image.mode == "RGB" else s.image.convert("RGB") for s in batch]
        inputs = self.processor(
            text=[self.prompt_text] * len(batch),
            images=images,
            padding=True,
            padding_side="left",  # whatever the checkpoint's default, generate needs left
            return_tensors="pt",
        ).to(self.device)
        kwargs: dict = dict(
            max_new_tokens=self.max_new_tokens,
            do_sample=self.do_sample,
            num_return_sequences=self.per_image,  # rows come back grouped per input
            pad_token_id=self.processor.tokenizer.pad_token_id,
        )
        if self.do_sample:
            # Plain sampling: Qwen2-VL-Instruct ships top_k=1/temperature=0.01, i.e. near-greedy.
            kwargs.update(temperature=1.0, top_p=1.0, top_k=0)
        cuda = str(self.device).startswith("cuda")
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
        )
        rng_devices = [torch.device(self.device).index or 0] if cuda else []
        with torch.inference_mode(), autocast, torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(self._batch_seed(batch))
            generated = self.model.generate(**inputs, **kwargs)  # (B * per_image, T + new)
        new_tokens = generated[:, inputs["input_ids"].shape[1] :]  # (B * per_image, new)
        texts = self.processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [t.strip() for t in texts]
