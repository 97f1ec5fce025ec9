"""The scorer registry: an fsspec prefix of checkpoints `<name>/{config.json, *.safetensors}`.

Each folder is a `ScorerSpec` with `checkpoint=` set, named after the folder; its
`scorer_version` hashes the weights, so a new checkpoint under the same name is a new version.
Write `config.json` last when uploading: a folder without it (or without weights) is skipped.
Remote checkpoints are downloaded once into `storage.work_dir/registry/` (the version hash and
the scorers read local files); the local copy is keyed by the remote listing, so new weights
under the same name land in a new folder.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rs_pipeline.core.config import ScorerSpec
from rs_pipeline.core.names import check_batch_key
from rs_pipeline.core.scoring.backends import CONFIG_FILE, registrable_backends
from rs_pipeline.core.sources.files import subfolders, url_prefix


@dataclass(frozen=True)
class RegistryScan:
    """Checkpoints found as specs, and folders skipped with their reason."""

    specs: list[ScorerSpec] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # folder name -> reason


def _skip_reason(name: str, files: list[str]) -> str | None:
    try:
        check_batch_key(name)  # the name becomes part of a partition key and a folder name
    except ValueError:
        return "name must be letters, digits, '.', '_' or '-'"
    if CONFIG_FILE not in files:
        return f"no {CONFIG_FILE} (incomplete upload?)"
    if not any(f.endswith(".safetensors") for f in files):
        return "no *.safetensors weights"
    return None


def _local_copy(fs, folder: str, files: list[dict], name: str, work_dir: str) -> Path:
    """Download a remote checkpoint folder once; the target is keyed by the remote listing."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f["name"]):
        tag = f.get("ETag") or f.get("etag") or f.get("mtime") or f.get("LastModified") or ""
        h.update(f"{posixpath.basename(f['name'])}|{f.get('size')}|{tag}\n".encode())
    target = Path(work_dir).expanduser() / "registry" / name / h.hexdigest()[:16]
    done = target / ".complete"
    if not done.exists():
        target.mkdir(parents=True, exist_ok=True)
        for f in files:
            fs.get_file(f["name"], str(target / posixpath.basename(f["name"])))
        done.touch()
    return target


def _spec(name: str, checkpoint: Path) -> ScorerSpec:
    backend = json.loads((checkpoint / CONFIG_FILE).read_text()).get("backend")
    allowed = registrable_backends()  # baselines have no trained weights to register
    if backend not in allowed:
        raise ValueError(f"config.json backend {backend!r} is not one of {list(allowed)}")
    return ScorerSpec(name=name, backend=backend, checkpoint=str(checkpoint))


def scan_registry(
    registry: str, work_dir: str, storage_options: dict[str, Any] | None = None
) -> RegistryScan:
    """Every complete checkpoint under `registry` as a ScorerSpec, sorted by name."""
    fs, folders = subfolders(
        registry, "automation.registry", "`<name>/` checkpoint folders", storage_options
    )
    local = url_prefix(fs) == ""
    scan = RegistryScan()
    for folder in folders:
        name = posixpath.basename(folder)
        files = [e for e in fs.ls(folder, detail=True) if e["type"] == "file"]
        reason = _skip_reason(name, [posixpath.basename(f["name"]) for f in files])
        if reason:
            scan.skipped[name] = reason
            continue
        path = Path(folder) if local else _local_copy(fs, folder, files, name, work_dir)
        try:
            scan.specs.append(_spec(name, path))
        except (ValueError, json.JSONDecodeError) as err:
            scan.skipped[name] = str(err)
    return scan
