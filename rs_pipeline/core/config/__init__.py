"""One YAML configuration, validated before any work.

Every section forbids unknown keys and names the allowed ones, so a typo fails at load time
with the key and the fix rather than halfway through a run. Sections live in `data.py` (the
data engine) and `models.py` (scorers to evaluation); this module assembles and loads them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from rs_pipeline.core.config.base import ConfigError, Section, StorageOptions
from rs_pipeline.core.config.data import (
    CaptionsConfig,
    ComputeConfig,
    DegraderConfig,
    EndpointCaptionerConfig,
    EndpointSettings,
    ImageFolderSourceConfig,
    IngestConfig,
    ManifestSourceConfig,
    NoiseConfig,
    PairsConfig,
    ProvidedCaptionerConfig,
    RetrievalCaptionerConfig,
    Sentinel2SourceConfig,
    SourceConfig,
    StorageConfig,
    SynthRSSourceConfig,
    TemplateCaptionerConfig,
    VLMCaptionerConfig,
    VQAConfig,
)
from rs_pipeline.core.config.models import (
    AutomationConfig,
    BenchmarkConfig,
    BestOfNConfig,
    EvaluationConfig,
    FinetuneConfig,
    RLConfig,
    ScorerSpec,
    ScoringConfig,
    SelectionConfig,
    ServingConfig,
    TrainStageSettings,
    VLMConfig,
)
from rs_pipeline.core.config.training import TrainingConfig

__all__ = [
    "AutomationConfig",
    "BenchmarkConfig",
    "BestOfNConfig",
    "CaptionsConfig",
    "ComputeConfig",
    "ConfigError",
    "DegraderConfig",
    "EndpointCaptionerConfig",
    "EndpointSettings",
    "EvaluationConfig",
    "FinetuneConfig",
    "ImageFolderSourceConfig",
    "IngestConfig",
    "ManifestSourceConfig",
    "NoiseConfig",
    "PairsConfig",
    "PipelineConfig",
    "ProvidedCaptionerConfig",
    "RLConfig",
    "RetrievalCaptionerConfig",
    "ScorerSpec",
    "ScoringConfig",
    "Section",
    "SelectionConfig",
    "ServingConfig",
    "Sentinel2SourceConfig",
    "SourceConfig",
    "StorageConfig",
    "StorageOptions",
    "SynthRSSourceConfig",
    "TemplateCaptionerConfig",
    "TrainStageSettings",
    "TrainingConfig",
    "VLMConfig",
    "VLMCaptionerConfig",
    "VQAConfig",
    "config_from_dict",
    "load_config",
    "preset_dict",
]

PRESETS = ("tiny", "demo", "paper", "curation")


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
    vlm: VLMConfig = VLMConfig()
    serving: ServingConfig = ServingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    automation: AutomationConfig = AutomationConfig()
    storage: StorageConfig = StorageConfig()
    compute: ComputeConfig = ComputeConfig()
    training: TrainingConfig = TrainingConfig()

    @model_validator(mode="after")
    def _vlm_ratios_selected(self) -> PipelineConfig:
        missing = sorted(set(self.vlm.ratios) - set(self.selection.ratios))
        if self.vlm.enabled and missing:
            raise ValueError(
                f"vlm.ratios {missing} are not in selection.ratios {list(self.selection.ratios)}: "
                "add them to selection.ratios or change vlm.ratios"
            )
        return self

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
