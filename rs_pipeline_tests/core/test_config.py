import pytest

from rs_pipeline.core.config import ConfigError, config_from_dict, load_config


def test_presets_load_and_tiny_is_small():
    tiny, demo = load_config("tiny"), load_config("demo")
    assert tiny.preset == "tiny" and demo.preset == "demo"
    assert sum(getattr(s, "count", 0) for s in tiny.sources) < sum(
        getattr(s, "count", 0) for s in demo.sources
    )


def test_unknown_key_fails_naming_key_and_allowed_keys():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"ingest": {"max_sid": 64}})
    assert "ingest" in str(err.value) and "max_sid" in str(err.value)
    assert "max_side" in str(err.value)  # the allowed keys are listed


@pytest.mark.parametrize("key", ["seed", "num_workers"])
def test_removed_compute_keys_fail_naming_what_is_allowed(key):
    # compute.seed and compute.num_workers were read by nothing; a file that still sets them
    # must fail loudly rather than look as if it steered something.
    with pytest.raises(ConfigError) as err:
        config_from_dict({"compute": {key: 1}})
    message = str(err.value)
    assert "compute" in message and f"unknown key(s) ['{key}']" in message
    assert "allowed keys here: device" in message


def test_bad_value_names_the_key_and_allowed_values():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"ingest": {"odd_mode_policy": "ignore"}})
    assert "ingest.odd_mode_policy" in str(err.value)
    assert "'normalise' or 'quarantine'" in str(err.value)


def test_unknown_source_kind_lists_the_kinds():
    with pytest.raises(ConfigError, match="synthrs.*sentinel2.*imagefolder.*manifest"):
        config_from_dict({"sources": [{"kind": "flickr"}]})


def test_unknown_preset_is_named():
    with pytest.raises(ConfigError, match="allowed presets: tiny, demo"):
        config_from_dict({"preset": "huge"})


def test_yaml_file_overrides_its_preset(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: tiny\ningest:\n  max_side: 96\n")
    cfg = load_config(path)
    assert cfg.ingest.max_side == 96
    assert cfg.sources == load_config("tiny").sources


def test_duplicate_source_names_fail_before_work():
    with pytest.raises(ConfigError, match="names must be unique"):
        config_from_dict({"sources": [{"kind": "synthrs"}, {"kind": "synthrs"}]})


def test_missing_file_is_neither_preset_nor_yaml(tmp_path):
    with pytest.raises(ConfigError, match="neither a preset"):
        load_config(tmp_path / "absent.yaml")


def test_paper_preset_fine_tunes_from_local_pretrained_weights_and_demo_from_random_init():
    paper, demo = load_config("paper"), load_config("demo")
    assert paper.finetune.clip_model == "ViT-L-14" and paper.finetune.clip_weights
    assert paper.finetune.clip_weights.endswith(".safetensors")
    assert demo.finetune.clip_weights is None and load_config("tiny").finetune.clip_weights is None
    assert len(demo.finetune.seeds) >= 3


def test_paper_preset_without_the_weights_says_where_to_put_them():
    from rs_pipeline.core.scoring.versions import versions

    with pytest.raises(FileNotFoundError, match="point `checkpoint:` at a local folder"):
        versions(load_config("paper").scoring)


def test_vlm_ratios_outside_the_selection_ratios_fail_naming_both_keys():
    with pytest.raises(ConfigError, match=r"vlm.ratios \[60.0\] are not in selection.ratios"):
        config_from_dict({"vlm": {"enabled": True, "ratios": [60]}, "selection": {"ratios": [30]}})
    cfg = config_from_dict(
        {"vlm": {"enabled": True, "ratios": [60]}, "selection": {"ratios": [30, 60]}}
    )
    assert (
        cfg.vlm.ratios == (60.0,) and cfg.vlm.lora == "auto" and cfg.vlm.bon.n == (1, 2, 4, 8, 10)
    )
