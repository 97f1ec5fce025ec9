"""Builds the configured captioners and judges by explicit name."""

from __future__ import annotations

from rs_pipeline.core.captions.base import Captioner, Judge
from rs_pipeline.core.config import CaptionsConfig, EndpointSettings, VLMCaptionerConfig
from rs_pipeline.core.prompts import CAPTION_PROMPT


def chat_client(settings: EndpointSettings):
    """A chat-completions client for an endpoint section of the config, taken as it is."""
    from rs_pipeline.core.captions.endpoint import ChatClient  # httpx only when an endpoint runs

    return ChatClient(settings)


def vlm_captioner(cfg: VLMCaptionerConfig, seed: int, device: str):
    """The local VLM captioner: a checkpoint folder, or `tiny` (built from a config)."""
    from rs_pipeline.core.captions.vlm import VLMCaptioner

    common = dict(
        prompt=CAPTION_PROMPT,
        prompt_version=cfg.prompt_version,
        batch_size=cfg.batch_size,
        max_new_tokens=cfg.max_new_tokens,
        per_image=cfg.per_image,
        do_sample=cfg.per_image > 1,
        seed=seed,
        device=device,
    )
    if cfg.checkpoint == "tiny":
        from rs_pipeline.core.models.qwen2vl import (
            TinyQwen2VLSpec,
            build_tiny_qwen2vl,
            default_tokenizer_corpus,
            train_tokenizer,
        )

        tokenizer = train_tokenizer(default_tokenizer_corpus())
        model, processor = build_tiny_qwen2vl(TinyQwen2VLSpec(seed=seed), tokenizer)
        return VLMCaptioner(model, processor, "qwen2vl-tiny", **common)
    if not cfg.checkpoint:
        raise ValueError(
            "captions.vlm.enabled needs captions.vlm.checkpoint: a local Qwen2-VL folder, "
            "or `tiny` for a small randomly initialised model"
        )
    return VLMCaptioner.from_pretrained(cfg.checkpoint, **common)


def build_captioners(cfg: CaptionsConfig, device: str = "cpu") -> list[Captioner]:
    """Every enabled captioner, in a fixed order."""
    from rs_pipeline.core.captions.degraders import SynthRSDegrader
    from rs_pipeline.core.captions.provided import ProvidedCaptioner
    from rs_pipeline.core.captions.templates import TemplateCaptioner

    out: list[Captioner] = []
    if cfg.provided.enabled:  # images without captions of their own get none from it
        out.append(ProvidedCaptioner(max_per_image=cfg.provided.max_per_image))
    if cfg.template.enabled:
        out.append(TemplateCaptioner(per_image=cfg.template.per_image, seed=cfg.seed))
    if cfg.retrieval.enabled:
        from rs_pipeline.core.captions.retrieval import RetrievalCaptioner, load_corpus

        if not cfg.retrieval.corpus:
            raise ValueError("captions.retrieval.enabled needs captions.retrieval.corpus: files")
        out.append(
            RetrievalCaptioner(
                load_corpus(cfg.retrieval.corpus),
                cfg.retrieval.name,
                cfg.retrieval.label_map,
                cfg.retrieval.per_image,
                cfg.seed,
            )
        )
    if cfg.degraders.enabled:
        kinds = {"kinds": tuple(cfg.degraders.kinds)} if cfg.degraders.kinds else {}
        out.append(SynthRSDegrader(per_image=cfg.degraders.per_image, seed=cfg.seed, **kinds))
    if cfg.vlm.enabled:
        out.append(vlm_captioner(cfg.vlm, cfg.seed, device))
    if cfg.endpoint.enabled:
        from rs_pipeline.core.captions.endpoint import EndpointCaptioner

        ep = cfg.endpoint
        out.append(
            EndpointCaptioner(
                chat_client(ep.endpoint),
                prompt=CAPTION_PROMPT,
                prompt_version=ep.prompt_version,
                per_image=ep.per_image,
                max_workers=ep.max_workers,
            )
        )
    return out


def build_judges(judge: str, endpoint: EndpointSettings) -> dict[str, Judge]:
    """Judges by role name: `oracle`, `label_consistency`, and `endpoint` when asked for."""
    from rs_pipeline.core.captions.oracle import LabelConsistencyJudge, OracleJudge

    judges: dict[str, Judge] = {
        "oracle": OracleJudge(),
        "label_consistency": LabelConsistencyJudge(),
    }
    if judge == "endpoint":
        from rs_pipeline.core.captions.endpoint import EndpointJudge

        judges["endpoint"] = EndpointJudge(chat_client(endpoint))
    return judges
