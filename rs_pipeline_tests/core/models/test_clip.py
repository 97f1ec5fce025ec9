"""Project CLIP configs are data, register once with open_clip and build offline, seeded."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch
from PIL import Image

from rs_pipeline.core.models.clip import (
    CLIP_CONFIGS,
    DEFAULT_CLIP,
    build_clip,
    clip_config,
    load_clip_weights,
    register_project_configs,
    resolved_config,
    save_clip_weights,
)


def _first_weight(model: torch.nn.Module) -> torch.Tensor:
    return next(model.parameters()).detach().clone()


def test_configs_are_plain_json_and_include_the_default():
    assert DEFAULT_CLIP in CLIP_CONFIGS
    for name, cfg in CLIP_CONFIGS.items():
        assert json.loads(json.dumps(cfg)) == cfg, name
        assert {"embed_dim", "vision_cfg", "text_cfg"} <= set(cfg)


def test_registering_twice_adds_nothing_and_open_clip_sees_every_config():
    names = register_project_configs()
    paths_before = list(open_clip.factory._MODEL_CONFIG_PATHS)
    assert register_project_configs() == names
    assert paths_before == open_clip.factory._MODEL_CONFIG_PATHS
    for name in CLIP_CONFIGS:
        assert name in open_clip.list_models()
        # open_clip holds the config with the local MiniLM folder in place of its package name
        assert open_clip.get_model_config(name) == resolved_config(clip_config(name))


@pytest.mark.parametrize("name", sorted(CLIP_CONFIGS))
def test_every_config_builds_offline_with_matching_transforms_and_tokenizer(name):
    model, _, preprocess_val, tokenizer = build_clip(name)
    size = CLIP_CONFIGS[name]["vision_cfg"]["image_size"]
    pixels = preprocess_val(Image.new("RGB", (100, 80), "green")).unsqueeze(0)  # (1, 3, H, W)
    ids = tokenizer(["a green field"])  # (1, T)
    assert pixels.shape == (1, 3, size, size)
    assert ids.shape == (1, CLIP_CONFIGS[name]["text_cfg"]["context_length"])
    with torch.no_grad():
        img, txt = model.encode_image(pixels), model.encode_text(ids)
    assert img.shape == txt.shape == (1, CLIP_CONFIGS[name]["embed_dim"])


def test_same_seed_gives_same_weights_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    a = _first_weight(build_clip(DEFAULT_CLIP, seed=1)[0])
    b = _first_weight(build_clip(DEFAULT_CLIP, seed=1)[0])
    c = _first_weight(build_clip(DEFAULT_CLIP, seed=2)[0])
    assert torch.equal(torch.rand(1), expected_draw)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_unknown_name_fails_listing_known_names():
    with pytest.raises(ValueError, match="rs-resnet-tiny-64") as err:
        build_clip("ViT-nope")
    assert "rs-vit-tiny-64" in str(err.value)


def test_weights_round_trip_through_safetensors(tmp_path):
    trained = build_clip(DEFAULT_CLIP, seed=1)[0]
    path = save_clip_weights(trained, tmp_path / "clip.safetensors")
    fresh = build_clip(DEFAULT_CLIP, seed=2)[0]
    load_clip_weights(fresh, path)
    for (name, p), q in zip(trained.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_missing_weights_file_says_what_to_provide(tmp_path):
    model = build_clip(DEFAULT_CLIP)[0]
    with pytest.raises(FileNotFoundError, match="provide a local .safetensors file"):
        load_clip_weights(model, tmp_path / "absent.safetensors")
    pickled = tmp_path / "weights.pt"
    pickled.write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="safetensors"):
        load_clip_weights(model, pickled)


def test_open_clip_bundled_architectures_resolve_offline_by_name():
    from rs_pipeline.core.models.clip import clip_config

    cfg = clip_config("ViT-L-14")
    assert cfg["vision_cfg"]["width"] == 1024 and cfg["embed_dim"] == 768
