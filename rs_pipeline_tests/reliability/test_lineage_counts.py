from rs_pipeline.cli import main
from rs_pipeline.core.config import load_config
from rs_pipeline.core.config.data import IngestConfig
from rs_pipeline.core.ingest.batch import ingest_items
from rs_pipeline.core.lineage import LineageStore, batch_summary
from rs_pipeline.core.records import QUARANTINE_SCHEMA, SAMPLE_SCHEMA, to_table
from rs_pipeline.core.sources.base import RawItem
from rs_pipeline_tests.factories import encode, noise_rgb, write_config


def _items() -> list[RawItem]:
    a, b = encode(noise_rgb(seed=1), "PNG"), encode(noise_rgb(seed=2), "PNG")
    return [
        RawItem("s/a.png", "s", "folder", a),
        RawItem("s/a-copy.png", "s", "folder", a),  # duplicate within a source
        RawItem("t/a.png", "t", "folder", a),  # duplicate across sources
        RawItem("t/b.png", "t", "folder", b),
        RawItem("t/bad.png", "t", "folder", b"not an image"),
    ]


def _ingest_into(store: LineageStore, batch: str):
    result = ingest_items(_items(), batch, IngestConfig(), lambda *_: None)
    for table, rows, schema in (
        ("samples", result.samples, SAMPLE_SCHEMA),
        ("quarantine", result.quarantine, QUARANTINE_SCHEMA),
    ):
        store.replace_partition(
            table, to_table(rows, schema), asset="rs_images", partition_key=batch, run_id="r"
        )
    return result.counts


def test_batch_summary_reconciles_to_ingest_counts_including_duplicates(tmp_path):
    store = LineageStore(str(tmp_path / "l.duckdb"))
    counts = _ingest_into(store, "b1")
    s = batch_summary(store, "b1")
    assert (counts.inputs, counts.unique, counts.duplicates, counts.quarantined) == (5, 2, 2, 1)
    assert (s.inputs, s.unique, s.duplicates, s.quarantined) == (5, 2, 2, 1)
    assert s.inputs == s.unique + s.duplicates + s.quarantined


def test_batch_summary_without_duplicates_counts_zero(tmp_path):
    store = LineageStore(str(tmp_path / "l.duckdb"))
    _ingest_into(store, "b1")
    assert batch_summary(store, "other").duplicates == 0


def test_lineage_command_prints_the_reconciliation_line(tmp_path, capsys):
    config = write_config(tmp_path)
    _ingest_into(LineageStore(load_config(config).storage.lineage_db), "b2")
    assert main(["lineage", "--config", config, "--batch", "b2"]) == 0
    out = capsys.readouterr().out
    assert "inputs 5 = unique 2 + duplicates 2 + quarantined 1" in out
