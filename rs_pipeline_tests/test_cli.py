import dagster as dg

from rs_pipeline.cli import main
from rs_pipeline.launch import materialize_batch


def test_lineage_command_prints_counts_by_source_class_and_reason(tiny_config, capsys):
    with dg.instance_for_test() as instance:
        assert materialize_batch(tiny_config, "b7", instance=instance).success
    capsys.readouterr()
    assert main(["lineage", "--config", tiny_config, "--batch", "b7"]) == 0
    out = capsys.readouterr().out
    assert "batch b7: by source" in out
    assert "synthrs" in out and "sentinel2" in out
    assert "forest" in out  # a SynthRS class
    assert "(unlabelled)" in out  # the Sentinel-2 pool


def test_lineage_command_for_unknown_batch_fails_clearly(tiny_config, capsys):
    assert main(["lineage", "--config", tiny_config, "--batch", "never"]) == 1
    assert "no rows for batch 'never'" in capsys.readouterr().err


def test_bad_config_exits_2_naming_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ingest:\n  max_sid: 3\n")
    assert main(["lineage", "--config", str(bad), "--batch", "x"]) == 2
    assert "max_sid" in capsys.readouterr().err


def test_bad_batch_key_is_refused_before_work(tiny_config):
    import pytest

    with pytest.raises(ValueError, match="letters, digits"):
        materialize_batch(tiny_config, "../escape", instance=None)
