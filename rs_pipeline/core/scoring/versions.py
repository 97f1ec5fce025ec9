"""Scorer versions: a readable name plus a short hash of the recipe (and of any weights).

`clip-head-3f9a1c` names one scorer recipe: the spec (backend, architecture, training stages,
seed) and, for a registered checkpoint, the bytes of its weights. A new recipe or new weights
is a new `scorer_version` partition; the same recipe is the same key on every machine.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rs_pipeline.core.config import ScorerSpec, ScoringConfig


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


def versions(cfg: ScoringConfig) -> dict[str, ScorerSpec]:
    """Every configured scorer by its version key."""
    return {scorer_version(s): s for s in cfg.scorers}


def spec_for(cfg: ScoringConfig, version: str) -> ScorerSpec:
    """The spec a version key names; fails listing the versions this config defines."""
    known = versions(cfg)
    if version not in known:
        raise KeyError(
            f"scorer_version {version!r} is not defined by this configuration; known: "
            f"{sorted(known)} (a changed spec is a new version: add that partition)"
        )
    return known[version]


def current_version(cfg: ScoringConfig) -> str:
    """The version key of `scoring.current`."""
    return next(v for v, s in versions(cfg).items() if s.name == cfg.current)
