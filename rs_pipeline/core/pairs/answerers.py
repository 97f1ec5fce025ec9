"""Models whose answers to VQA questions are judged against the ground truth."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from rs_pipeline.core.captions.base import SampleView
from rs_pipeline.core.pairs.vqa import Question


class VLMAnswerer:
    """Answers with a local VLM: the question is the prompt, one greedy answer per image."""

    def __init__(self, captioner) -> None:
        self.base = captioner  # a VLMCaptioner: its model, processor and device are reused
        self.id = f"vlm-answerer:{captioner.model_name}"

    def answer(self, samples: Sequence[SampleView], questions: Sequence[Question]) -> list[str]:
        """One answer per question, batched over the images asked the same question."""
        from rs_pipeline.core.captions.vlm import VLMCaptioner

        views = {s.sample_id: s for s in samples}
        by_text: dict[str, list[int]] = defaultdict(list)
        for i, q in enumerate(questions):
            by_text[q.text].append(i)
        answers = [""] * len(questions)
        b = self.base
        for text, idxs in sorted(by_text.items()):
            asker = VLMCaptioner(
                b.model, b.processor, b.model_name, prompt=text, batch_size=b.batch_size,
                max_new_tokens=b.max_new_tokens, seed=b.seed, device=b.device,
            )  # fmt: skip
            cands = asker.caption([views[questions[i].sample_id] for i in idxs])
            for i, cand in zip(idxs, cands, strict=True):
                answers[i] = cand.text if cand.status == "ok" else ""
        return answers
