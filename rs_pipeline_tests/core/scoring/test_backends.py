"""The backend registry: one record per backend, the names the config allows, lazy imports."""

import json
import subprocess
import sys

import pytest

from rs_pipeline.core.config import ScorerSpec
from rs_pipeline.core.config.models import SCORER_BACKENDS
from rs_pipeline.core.scoring.backends import (
    BACKENDS,
    get_backend,
    load_scorer,
    registrable_backends,
    save_scorer,
)
from rs_pipeline.core.scoring.baselines import RandomScorer
from rs_pipeline_tests.factories import noise_rgb


def test_registry_names_are_exactly_the_backends_the_config_allows():
    assert tuple(BACKENDS) == SCORER_BACKENDS
    assert all(name == b.name for name, b in BACKENDS.items())


def test_only_learned_backends_are_registrable_or_trained():
    assert registrable_backends() == ("clip_head", "qwen2vl_reward")
    assert {n for n, b in BACKENDS.items() if b.learns} == {"clip_head", "qwen2vl_reward"}
    assert {n for n, b in BACKENDS.items() if b.reads_batch_data} == {"oracle"}


def test_unknown_backend_names_every_allowed_one():
    with pytest.raises(ValueError, match="clip_head, qwen2vl_reward, clipscore, random, oracle"):
        get_backend("clip")


def test_a_saved_baseline_loads_back_by_the_backend_its_config_names(tmp_path):
    spec = ScorerSpec(name="coin", backend="random", seed=4)
    save_scorer(RandomScorer(seed=4), spec, tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config == {"backend": "random", "spec": spec.model_dump(mode="json")}
    loaded = load_scorer(tmp_path / "model")
    images = [noise_rgb(16, seed=i) for i in range(3)]
    texts = ["a lake", "a field", "a road"]
    assert loaded.score(images, texts) == RandomScorer(seed=4).score(images, texts)


def test_loading_a_folder_of_an_unknown_backend_names_the_folder_and_the_allowed(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"backend": "mystery"}))
    with pytest.raises(ValueError, match=r"config.json: unknown backend 'mystery'.*random"):
        load_scorer(tmp_path)


def test_the_oracle_needs_the_store_to_load(tmp_path):
    spec = ScorerSpec(name="oracle", backend="oracle")
    config = {"backend": "oracle", "spec": spec.model_dump(mode="json")}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="store="):
        load_scorer(tmp_path)


def test_looking_up_backends_and_versions_imports_no_model_library():
    code = (
        "import sys\n"
        "from rs_pipeline.core.scoring.backends import get_backend\n"
        "from rs_pipeline.core.scoring.registry import scan_registry\n"
        "from rs_pipeline.core.scoring.versions import scorer_version\n"
        "[get_backend(n) for n in ('clip_head', 'qwen2vl_reward')]\n"
        "print(sorted(m for m in ('open_clip', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
