"""Scorer versions: a readable name plus a short hash of the recipe (and of any weights).

`clip-head-3f9a1c` names one scorer recipe: the spec (backend, architecture, training stages,
seed) and, for a registered checkpoint, the bytes of its weights. A new recipe or new weights
is a new `scorer_version` partition; the same recipe is the same key on every machine.
Given the whole `PipelineConfig`, the checkpoints of `automation.registry` are scorers too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rs_pipeline.core.config import PipelineConfig, ScorerSpec, ScoringConfig


def weights_digest(folder: str | Path) -> str:
    """sha256 over every safetensors file of a checkpoint folder, in name order."""
    path = Path(folder).expanduser()
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(
            f"checkpoint {path} holds no *.safetensors weights; point `checkpoint:` at a local "
            "folder with safetensors weights and its config.json"
        )
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def scorer_version(spec: ScorerSpec) -> str:
    """`<name>-<6 hex>` from the spec and, for a registered checkpoint, its weights."""
    payload = spec.model_dump(mode="json")
    if spec.checkpoint:
        payload["checkpoint_weights"] = weights_digest(spec.checkpoint)
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return f"{spec.name}-{digest[:6]}"


def _specs(cfg: ScoringConfig | PipelineConfig) -> list[ScorerSpec]:
    """Configured scorers, then (given a PipelineConfig) the registry's checkpoints."""
    if isinstance(cfg, ScoringConfig):
        return list(cfg.scorers)
    specs = list(cfg.scoring.scorers)
    if cfg.automation.registry:
        from rs_pipeline.core.scoring.registry import scan_registry

        reg = scan_registry(
            cfg.automation.registry, cfg.storage.work_dir, cfg.storage.storage_options
        )
        specs += reg.specs
    return specs


def versions(cfg: ScoringConfig | PipelineConfig) -> dict[str, ScorerSpec]:
    """Every configured scorer (and registry checkpoint, given a PipelineConfig) by version."""
    return {scorer_version(s): s for s in _specs(cfg)}


def spec_for(cfg: ScoringConfig | PipelineConfig, version: str) -> ScorerSpec:
    """The spec a version key names; fails listing the versions this config defines."""
    known = versions(cfg)
    if version not in known:
        raise KeyError(
            f"scorer_version {version!r} is not defined by this configuration; known: "
            f"{sorted(known)} (a changed spec is a new version: add that partition)"
        )
    return known[version]


def current_version(cfg: ScoringConfig | PipelineConfig) -> str:
    """The version key of `scoring.current`; a registry checkpoint of that name wins."""
    name = (cfg if isinstance(cfg, ScoringConfig) else cfg.scoring).current
    # The registry is where new weights land, so its checkpoint is the newest of that name.
    return [v for v, s in versions(cfg).items() if s.name == name][-1]
