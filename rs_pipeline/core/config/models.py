"""Config sections of the model side: scorers, selection, fine-tuning, evaluation, automation."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, model_validator

from rs_pipeline.core.config.base import Section, StorageOptions


class TrainStageSettings(Section):
    """One stage of score-model training: head, then vision tower, then text tower."""

    stage: Literal["head", "vision", "text"]
    lr: float = Field(gt=0)
    steps: int = Field(ge=1)
    warmup_steps: int = Field(0, ge=0)


def _default_stages() -> tuple[TrainStageSettings, ...]:
    # Head 1e-3, towers 1e-4: chosen for the tiny CLIP (held-out accuracy 0.94 on the demo
    # preset, benchmarks/RESULTS.md), not swept; the paper uses ~2e-5 and ~1e-6 for 7B.
    return (
        TrainStageSettings(stage="head", lr=1e-3, steps=150, warmup_steps=10),
        TrainStageSettings(stage="vision", lr=1e-4, steps=60, warmup_steps=5),
        TrainStageSettings(stage="text", lr=1e-4, steps=60, warmup_steps=5),
    )


# The backend names a scorer may give. How each is built, saved and loaded lives in
# `core/scoring/backends.py` (a floor above config, so the names live here; a test keeps the two
# equal). A Literal, so a wrong name fails validation listing the allowed ones.
ScorerBackendName = Literal["clip_head", "qwen2vl_reward", "clipscore", "random", "oracle"]
SCORER_BACKENDS: tuple[str, ...] = get_args(ScorerBackendName)


class ScorerSpec(Section):
    """One scorer: a learned backend to train (or a checkpoint to register) or a baseline."""

    name: str = Field(description="readable part of the scorer_version, e.g. clip-head")
    backend: ScorerBackendName = Field(
        description="oracle: true quality where known (measurement ceiling, never production)"
    )
    clip_model: str = Field("rs-resnet-tiny-64", description="open_clip config (clip backends)")
    clip_weights: str | None = Field(None, description="local safetensors CLIP weights")
    warm_start_steps: int = Field(
        100, ge=0, description="contrastive steps on the pool before ranking (no clip_weights)"
    )
    checkpoint: str | None = Field(None, description="register this local checkpoint instead")
    warm_start_lock_text: bool = Field(
        False, description="warm start with a pretrained text tower frozen (LiT)"
    )
    head_prior: Literal["none", "clipscore"] = Field(
        "none", description="clip_head: start the head as CLIPScore and learn a correction"
    )
    stages: tuple[TrainStageSettings, ...] = Field(default_factory=_default_stages)
    batch_size: int = Field(32, ge=2)
    grad_clip: float = Field(1.0, gt=0)
    eval_every: int = Field(25, ge=1)
    patience: int = Field(4, ge=1)
    checkpoint_every: int | None = Field(
        None, ge=1, description="steps between resumable snapshots; unset: every eval_every"
    )
    seed: int = 0


def _default_scorers() -> tuple[ScorerSpec, ...]:
    return (
        ScorerSpec(name="clip-head", backend="clip_head"),
        ScorerSpec(name="clipscore", backend="clipscore"),
        ScorerSpec(name="random", backend="random"),
    )


class ScoringConfig(Section):
    """Score models: which exist, which is current, and how inference runs."""

    scorers: tuple[ScorerSpec, ...] = Field(default_factory=_default_scorers)
    current: str = Field("clip-head", description="the scorer name nightly runs use")
    min_val_accuracy: float = Field(0.6, ge=0, le=1, description="score_model check threshold")
    score_batch_size: int = Field(64, ge=1)
    num_workers: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _current_exists(self) -> ScoringConfig:
        names = [s.name for s in self.scorers]
        if self.current not in names:
            raise ValueError(f"scoring.current {self.current!r} is not among scorers {names}")
        return self


class SelectionConfig(Section):
    """Which curated subsets each scorer version yields."""

    ratios: tuple[float, ...] = Field((30.0,), description="percents kept, e.g. [10, 30, 50]")
    stratify: Literal["none", "label", "source"] = "none"
    score_norm: Literal["none", "per_image"] = Field(
        "none",
        description="per_image: rank by score minus the image's mean candidate score (scorers "
        "learn within-image preferences, so raw scores compare within an image, not across)",
    )
    max_per_image: int | None = Field(
        None, ge=1, description="keep at most this many captions of one image (1: one per image)"
    )
    webdataset: bool = Field(False, description="also write WebDataset tar shards per selection")
    shard_size: int = Field(1000, ge=1, description="pairs per WebDataset shard")

    @model_validator(mode="after")
    def _ratios_in_range(self) -> SelectionConfig:
        bad = [r for r in self.ratios if not 0 < r <= 100]
        if bad:
            raise ValueError(f"selection.ratios must be in (0, 100], got {bad}")
        return self


class FinetuneConfig(Section):
    """CLIP fine-tuning on each selection: equal steps for every selection, several seeds."""

    clip_model: str = Field("rs-resnet-tiny-64", description="open_clip config to train")
    clip_weights: str | None = Field(
        None, description="local safetensors to start from (the `paper` setting); else random init"
    )
    steps: int = Field(150, ge=1, description="optimisation steps, the same for every selection")
    batch_size: int = Field(64, ge=2)
    lr: float = Field(5e-4, gt=0)
    warmup_steps: int = Field(10, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    lock_text: bool = Field(
        False, description="keep a pretrained text tower frozen, train its projection (LiT)"
    )
    seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1)
    checkpoint_every: int = Field(50, ge=1, description="steps between resumable snapshots")
    include_all: bool = Field(True, description="also train on `all@100`, the uncurated pool")


class BestOfNConfig(Section):
    """Best-of-N at test time: N sampled answers per question, one kept per strategy."""

    enabled: bool = True
    n: tuple[int, ...] = Field((1, 2, 4, 8, 10), min_length=1, description="answers sampled")
    temperature: float = Field(0.85, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    scorer: str | None = Field(None, description="scorer name that ranks; None: scoring.current")
    clip_scorer: str | None = Field(
        "clipscore", description="scorer name of the CLIP-score pick baseline; None: skip it"
    )
    max_questions: int | None = Field(
        120, ge=1, description="questions per benchmark (N samples each); None: all"
    )

    @model_validator(mode="after")
    def _n_positive(self) -> BestOfNConfig:
        if any(n < 1 for n in self.n):
            raise ValueError(f"vlm.bon.n must be >= 1, got {list(self.n)}")
        return self


class RLConfig(Section):
    """GRPO from each SFT checkpoint, rewarded by the scorer (the paper: n=5, KL 1e-2, lr 1e-6).

    The scorer is the one that ranks best-of-N answers (`vlm.bon.scorer`, else scoring.current);
    the seeds are `vlm.seeds`, each RL run starting from that seed's SFT checkpoint.
    """

    enabled: bool = Field(False, description="materialize vlm_rl_checkpoints")
    steps: int = Field(20, ge=1, description="GRPO steps, the same for every selection")
    num_generations: int = Field(5, ge=2, description="rollouts per prompt (the paper's n=5)")
    beta: float = Field(1e-2, ge=0, description="KL weight to the SFT checkpoint (paper: 1e-2)")
    lr: float = Field(
        1e-6,
        gt=0,
        description="the paper's actor lr for 7B; the tiny CPU model needs ~1e-3 to move in a "
        "few steps",
    )
    batch_size: int = Field(
        1, ge=1, description="prompts per step; each step samples batch_size x num_generations"
    )
    max_completion_length: int = Field(32, ge=1, description="tokens sampled per rollout")
    temperature: float = Field(1.0, gt=0, description="rollout sampling temperature")
    # The names of `core/rewards/shaping.py` REWARD_TYPES (a floor above config).
    reward_type: Literal["open_ended", "em", "iou"] = "open_ended"
    format_weight: float = Field(
        0.3, ge=0, le=1, description="overall = w * format + (1 - w) * accuracy (paper: 0.3)"
    )


class VLMConfig(Section):
    """VLM supervised fine-tuning on selections (the paper: Qwen2-VL, LoRA, the top 60%)."""

    enabled: bool = Field(False, description="materialize vlm_checkpoints and bon_eval")
    model: str = Field(
        "tiny", description="tiny: a seeded tiny Qwen2-VL built from config; else a local folder"
    )
    ratios: tuple[float, ...] = Field(
        (60.0,), description="selection percents the VLM trains on (each in selection.ratios)"
    )
    include_all: bool = Field(True, description="also train on `all@100`, the uncurated pool")
    lora: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: LoRA on a local checkpoint, full fine-tuning on tiny"
    )
    lora_rank: int = Field(8, ge=1)
    lora_alpha: int = Field(8, ge=1)
    steps: int = Field(60, ge=1, description="optimisation steps, the same for every selection")
    batch_size: int = Field(8, ge=1)
    lr: float = Field(2e-4, gt=0)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    seeds: tuple[int, ...] = Field((0,), min_length=1)
    vqa_per_image: int = Field(4, ge=0, description="VQA pairs (chosen answers) per image")
    checkpoint_every: int = Field(20, ge=1, description="steps between resumable snapshots")
    max_new_tokens: int = Field(12, ge=1)
    eval_batch_size: int = Field(16, ge=1)
    vqa_count: int = Field(60, ge=1, description="held-out SynthRS tiles asked VQA questions")
    vqa_seed: int = Field(20_011, description="held-out SynthRS VQA tiles: never a training seed")
    bon: BestOfNConfig = BestOfNConfig()
    rl: RLConfig = RLConfig()


class ServingConfig(Section):
    """`rs-pipeline serve` (one scorer version over HTTP) and the clients that call it."""

    host: str = "127.0.0.1"
    port: int = Field(8008, ge=0, le=65535)
    max_batch: int = Field(32, ge=1, description="pairs scored in one forward pass at most")
    max_wait_ms: float = Field(5.0, ge=0, description="how long a batch waits to fill")
    max_body_bytes: int = Field(16_000_000, ge=1, description="larger requests get 413")
    max_image_pixels: int = Field(4_000_000, ge=1, description="larger images get 413")
    max_texts: int = Field(64, ge=1, description="texts per /v1/score request")
    token_env: str | None = Field(
        "RS_PIPELINE_SERVE_TOKEN", description="env var holding the bearer token; unset: open"
    )
    url: str | None = Field(
        None, description="a running scorer service for assets; None: the in-process scorer"
    )
    timeout_s: float = Field(30.0, gt=0, description="client: per request")
    max_retries: int = Field(2, ge=0, description="client: retries of a failed request")


class BenchmarkConfig(Section):
    """One evaluation set: a labelled ImageFolder, a caption file, or held-out SynthRS tiles."""

    name: str
    kind: Literal["classification", "retrieval", "synthrs"]
    path: str | None = Field(None, description="ImageFolder root or CSV/JSONL caption file")
    image_root: str | None = Field(None, description="caption file images resolve inside this")
    class_names: dict[str, str] = Field(
        default_factory=dict, description="folder name -> readable phrase for prompts"
    )
    max_images: int | None = Field(None, ge=1)
    count: int = Field(140, ge=2, description="synthrs: held-out tiles rendered")
    seed: int = Field(10_007, description="synthrs: never a training seed")
    size: int = Field(64, ge=16)
    storage_options: StorageOptions = Field(default_factory=dict)

    @model_validator(mode="after")
    def _path_when_needed(self) -> BenchmarkConfig:
        if self.kind != "synthrs" and not self.path:
            raise ValueError(f"benchmark {self.name!r} ({self.kind}) needs `path`")
        return self


def _default_benchmarks() -> tuple[BenchmarkConfig, ...]:
    return (BenchmarkConfig(name="synthrs-heldout", kind="synthrs"),)


class EvaluationConfig(Section):
    """Benchmarks every checkpoint is scored on, and decontamination against training."""

    benchmarks: tuple[BenchmarkConfig, ...] = Field(default_factory=_default_benchmarks)
    batch_size: int = Field(128, ge=1)
    decontaminate: bool = Field(True, description="drop eval images whose sample_id was trained on")

    @model_validator(mode="after")
    def _names_unique(self) -> EvaluationConfig:
        names = [b.name for b in self.benchmarks]
        if len(set(names)) != len(names):
            raise ValueError(f"evaluation.benchmarks: names must be unique, got {names}")
        return self


class AutomationConfig(Section):
    """Nightly re-curation from a landing prefix, and the scorer registry the sensor watches."""

    landing: str | None = Field(
        None, description="fsspec prefix; each new sub-folder `<batch>/` is one night's drop"
    )
    nightly_cron: str = "0 2 * * *"
    registry: str | None = Field(
        None, description="fsspec prefix of scorer checkpoints, one `<name>/` folder each"
    )
    sensor_interval_s: int = Field(60, ge=1)
