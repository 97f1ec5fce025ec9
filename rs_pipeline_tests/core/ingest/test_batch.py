from rs_pipeline.core.config import IngestConfig
from rs_pipeline.core.ingest.batch import ingest_items
from rs_pipeline.core.records import sample_id_of
from rs_pipeline.core.sources.base import RawItem
from rs_pipeline.core.sources.manifest import ManifestSource
from rs_pipeline_tests.factories import encode, noise_rgb


def item(uri: str, data: bytes | None, problem=None, label="forest") -> RawItem:
    return RawItem(uri, "src", "test", data, label=label, problem=problem)


def run(items):
    images = {}
    result = ingest_items(
        items, "b1", IngestConfig(max_side=64), lambda sid, fmt, data: images.__setitem__(sid, data)
    )
    return result, images


def test_exact_duplicates_collapse_to_one_row_keeping_every_uri():
    jpg = encode(noise_rgb(seed=1), "JPEG")
    result, images = run([item("a.jpg", jpg), item("copy/a.jpg", jpg), item("b.jpg", b"")])
    assert len(result.samples) == 1
    sample = result.samples[0]
    assert sample.sample_id == sample_id_of(jpg)
    assert sample.source_uris == ["a.jpg", "copy/a.jpg"]
    assert list(images) == [sample.sample_id]
    assert result.counts.duplicates == 1


def test_manifest_rows_of_one_image_merge_their_captions_into_one_sample(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "0.png").write_bytes(encode(noise_rgb(seed=1), "PNG"))
    (tmp_path / "img" / "1.png").write_bytes(encode(noise_rgb(seed=2), "PNG"))
    (tmp_path / "train.csv").write_text(
        "filename,title\n"
        "img/0.png,a river between fields\n"
        "img/1.png,dense houses\n"
        "img/0.png,green farmland by a river\n"
        "img/0.png,a river between fields\n"
    )
    source = ManifestSource(
        "clip_csv", str(tmp_path / "train.csv"), columns={"path": "filename", "captions": "title"}
    )
    result, _ = run(source.iter_items("b1"))
    river, houses = result.samples
    assert river.captions == ["a river between fields", "green farmland by a river"]
    assert len(river.source_uris) == 3
    assert houses.captions == ["dense houses"]
    c = result.counts
    assert (c.inputs, c.unique, c.duplicates, c.quarantined) == (4, 2, 2, 0)
    assert c.reconciles


def test_counts_reconcile_with_every_kind_of_outcome():
    good = [encode(noise_rgb(seed=s), "PNG") for s in range(3)]
    items = [item(f"g{i}", g) for i, g in enumerate(good)]
    items += [item("dup", good[0]), item("empty", b""), item("txt", b"hello")]
    items += [item("gone", None, problem=("unreadable", "FileNotFoundError: gone"))]
    result, _ = run(items)
    c = result.counts
    assert (c.inputs, c.unique, c.duplicates, c.quarantined) == (7, 3, 1, 3)
    assert c.reconciles
    assert dict(c.by_reason) == {"zero_byte": 1, "not_an_image": 1, "unreadable": 1}


def test_quarantine_rows_carry_uri_reason_and_hash():
    cut = encode(noise_rgb(), "PNG")[:120]
    result, _ = run([item("bad.png", cut)])
    (row,) = result.quarantine
    assert (row.uri, row.reason, row.batch) == ("bad.png", "truncated", "b1")
    assert row.sample_id == sample_id_of(cut)


def test_file_over_max_bytes_is_quarantined_unread():
    big = encode(noise_rgb(64), "PNG")
    result = ingest_items([item("big", big)], "b1", IngestConfig(max_bytes=100), lambda *_: None)
    assert [q.reason for q in result.quarantine] == ["too_large_file"]
