"""The scorer registry: checkpoint folders become ScorerSpecs whose versions track their weights."""

import json
from pathlib import Path

import pytest

from rs_pipeline.core.config import config_from_dict
from rs_pipeline.core.scoring.registry import scan_registry
from rs_pipeline.core.scoring.versions import current_version, spec_for, versions


def checkpoint(registry: Path, name: str, weights: bytes = b"w1", backend: str = "clip_head"):
    folder = registry / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "config.json").write_text(json.dumps({"backend": backend}))
    return folder


def test_checkpoint_folder_becomes_a_spec_named_after_it(tmp_path):
    folder = checkpoint(tmp_path, "rs-scorer")
    (spec,) = scan_registry(str(tmp_path), str(tmp_path / "work")).specs
    assert (spec.name, spec.backend, spec.checkpoint) == ("rs-scorer", "clip_head", str(folder))


def test_incomplete_or_unregistrable_folders_are_skipped_with_a_reason(tmp_path):
    (tmp_path / "uploading").mkdir()
    (tmp_path / "uploading" / "model.safetensors").write_bytes(b"w")
    checkpoint(tmp_path, "baseline", backend="random")
    scan = scan_registry(str(tmp_path), str(tmp_path / "work"))
    assert scan.specs == []
    assert "config.json" in scan.skipped["uploading"]
    assert "backend" in scan.skipped["baseline"]


def _config(tmp_path: Path, **scoring):
    return config_from_dict(
        {
            "preset": "tiny",
            "scoring": scoring,
            "automation": {"registry": str(tmp_path / "registry")},
            "storage": {"work_dir": str(tmp_path / "work")},
        }
    )


def test_registry_specs_are_versions_of_the_whole_config(tmp_path):
    checkpoint(tmp_path / "registry", "rs-scorer")
    cfg = _config(tmp_path)
    extra = set(versions(cfg)) - set(versions(cfg.scoring))
    (version,) = extra
    assert version.startswith("rs-scorer-")
    assert spec_for(cfg, version).checkpoint == str(tmp_path / "registry" / "rs-scorer")
    with pytest.raises(KeyError):
        spec_for(cfg.scoring, version)  # only the whole config knows the registry


def test_new_weights_under_the_same_name_are_a_new_version(tmp_path):
    checkpoint(tmp_path / "registry", "rs-scorer", b"w1")
    (before,) = set(versions(_config(tmp_path))) - set(versions(_config(tmp_path).scoring))
    checkpoint(tmp_path / "registry", "rs-scorer", b"w2-longer")
    (after,) = set(versions(_config(tmp_path))) - set(versions(_config(tmp_path).scoring))
    assert before != after and after.startswith("rs-scorer-")


def test_registry_checkpoint_named_like_the_current_scorer_is_current(tmp_path):
    checkpoint(tmp_path / "registry", "clip-head")
    cfg = _config(tmp_path)
    assert current_version(cfg) != current_version(cfg.scoring)
    assert spec_for(cfg, current_version(cfg)).checkpoint is not None


def test_remote_registry_is_downloaded_once_into_the_work_dir(tmp_path):
    import fsspec

    mem = fsspec.filesystem("memory")
    mem.pipe("/reg/remote-scorer/model.safetensors", b"weights")
    mem.pipe("/reg/remote-scorer/config.json", json.dumps({"backend": "clip_head"}).encode())
    (spec,) = scan_registry("memory://reg", str(tmp_path / "work")).specs
    local = Path(spec.checkpoint)
    assert local.is_relative_to(tmp_path / "work" / "registry" / "remote-scorer")
    assert (local / "model.safetensors").read_bytes() == b"weights"
    (again,) = scan_registry("memory://reg", str(tmp_path / "work")).specs
    assert again.checkpoint == spec.checkpoint
