"""Scorer versions: a readable name plus a short hash of the recipe (and of any weights).

`clip-head-3f9a1c` names one scorer recipe: the spec (backend, architecture, training stages,
seed) and, for a registered checkpoint, the bytes of its weights. A new recipe or new weights
is a new `scorer_version` partition; the same recipe is the same key on every machine.
Given the whole `PipelineConfig`, the checkpoints of `automation.registry` are scorers too.

Hashing weights reads every byte, and versions are computed on every sensor tick and automation
evaluation; `cached_weights_digest` reads a checkpoint once per process while its files keep
their path, size and modification times.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from rs_pipeline.core.config import PipelineConfig, ScorerSpec, ScoringConfig


def _weight_files(folder: str | Path) -> list[Path]:
    path = Path(folder).expanduser()
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(
            f"checkpoint {path} holds no *.safetensors weights; point `checkpoint:` at a local "
            "folder with safetensors weights and its config.json"
        )
    return files


def _hash_files(files: list[Path]) -> str:
    """sha256 over each file's name and bytes, in the given order: reads every byte."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def weights_digest(folder: str | Path) -> str:
    """sha256 over every safetensors file of a checkpoint folder, in name order (reads all)."""
    return _hash_files(_weight_files(folder))


@dataclass(frozen=True)
class _FileStamp:
    """What says a weights file is unchanged since it was hashed."""

    name: str  # the name hashed: a symlink's own, not its target's
    path: str  # resolved: the same file under another spelling is the same entry
    size: int
    mtime_ns: int
    ctime_ns: int  # the kernel sets it on every write; tools that restore mtime cannot


_DIGESTS: OrderedDict[tuple[_FileStamp, ...], str] = OrderedDict()
_DIGESTS_MAX = 256  # each stamp is a few strings: a bound, not a budget
_DIGESTS_LOCK = threading.Lock()  # sensors and automation may evaluate in threads


def _stamps(files: list[Path]) -> tuple[_FileStamp, ...]:
    out = []
    for f in files:
        st = f.stat()
        out.append(_FileStamp(f.name, str(f.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def cached_weights_digest(folder: str | Path) -> str:
    """`weights_digest`, read once per process while every safetensors file keeps its path,
    size and mtime (a changed, added or removed file is read again)."""
    files = _weight_files(folder)
    key = _stamps(files)
    with _DIGESTS_LOCK:
        if key in _DIGESTS:
            _DIGESTS.move_to_end(key)
            return _DIGESTS[key]
    digest = _hash_files(files)
    if _stamps(files) != key:  # written to while read: right for now, not worth remembering
        return digest
    with _DIGESTS_LOCK:
        _DIGESTS[key] = digest
        while len(_DIGESTS) > _DIGESTS_MAX:
            _DIGESTS.popitem(last=False)
    return digest


# Spec fields that say how a run is operated, not what it trains: changing one keeps the version.
_NOT_RECIPE = {"checkpoint_every"}


def scorer_version(spec: ScorerSpec) -> str:
    """`<name>-<6 hex>` from the spec and, for a registered checkpoint, the sha256 of its weights.

    I/O: a registered checkpoint's weights are hashed (`cached_weights_digest`: every byte is
    read once per process, then reused while each file's path, size and mtime are unchanged).
    """
    payload = spec.model_dump(mode="json", exclude=_NOT_RECIPE)
    if spec.checkpoint:
        payload["checkpoint_weights"] = cached_weights_digest(spec.checkpoint)
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


def version_named(cfg: ScoringConfig | PipelineConfig, name: str) -> str:
    """The version key of the scorer called `name`; a registry checkpoint of that name wins."""
    # The registry is where new weights land, so its checkpoint is the newest of that name.
    found = [v for v, s in versions(cfg).items() if s.name == name]
    if not found:
        known = sorted({s.name for s in versions(cfg).values()})
        raise KeyError(f"no scorer named {name!r} in scoring.scorers or the registry: {known}")
    return found[-1]


def current_version(cfg: ScoringConfig | PipelineConfig) -> str:
    """The version key of `scoring.current`."""
    return version_named(cfg, (cfg if isinstance(cfg, ScoringConfig) else cfg.scoring).current)
