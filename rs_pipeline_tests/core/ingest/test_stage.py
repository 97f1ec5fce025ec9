"""The ingest stage over real folders: a bad-file corpus, reconciliation, S3 user data."""

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import config_from_dict
from rs_pipeline.core.ingest.stage import run_ingest
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.records import sample_id_of
from rs_pipeline_tests.factories import encode, noise_rgb


def bad_corpus(root) -> dict[str, str]:
    """An ImageFolder of good, duplicate and broken files; returns file -> expected reason."""
    good = encode(noise_rgb(seed=1), "JPEG")
    files = {
        "forest/good.jpg": (good, None),
        "forest/copy_of_good.jpg": (good, None),
        "forest/cmyk.jpg": (encode(noise_rgb(seed=2).convert("CMYK"), "JPEG"), None),
        "forest/palette.png": (encode(noise_rgb(seed=3).convert("P"), "PNG"), None),
        "lake/empty.jpg": (b"", "zero_byte"),
        "lake/text.png": (b"this is a shopping list", "not_an_image"),
        "lake/truncated.jpg": (encode(noise_rgb(seed=4), "JPEG")[:500], "truncated"),
        "lake/bomb.png": (encode(Image.new("L", (3000, 3000)), "PNG"), "decompression_bomb"),
        "lake/float.tif": (
            encode(Image.fromarray(np.ones((8, 8), np.float32)), "TIFF"),
            "unsupported_mode",
        ),
        "lake/notes.txt": (b"notes", "unlisted_extension"),
    }
    for rel, (data, _) in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return {rel: reason for rel, (_, reason) in files.items() if reason}


def run(tmp_path, path: str, storage_options=None):
    cfg = config_from_dict(
        {
            "sources": [
                {"kind": "imagefolder", "name": "user", "path": path}
                | ({"storage_options": storage_options} if storage_options else {})
            ],
            "ingest": {"max_pixels": 4_000_000},
            "storage": {"root": str(tmp_path / "out"), "lineage_db": str(tmp_path / "l.duckdb")},
        }
    )
    store, lineage = ArtifactStore(cfg.storage.root), LineageStore(cfg.storage.lineage_db)
    return run_ingest(cfg, "b1", store, lineage, "run-1"), store, lineage


def test_corrupt_files_are_quarantined_with_their_reasons_and_counts_reconcile(tmp_path):
    expected = bad_corpus(tmp_path / "in")
    report, store, lineage = run(tmp_path, str(tmp_path / "in"))
    quarantine = store.read_table("rs_images/batch=b1/quarantine.parquet").to_pylist()
    got = {q["uri"].split("/in/", 1)[1]: q["reason"] for q in quarantine}
    assert got == expected
    c = report.counts
    assert (c.inputs, c.unique, c.duplicates, c.quarantined) == (10, 3, 1, 6)
    assert c.reconciles
    manifest = store.read_table("rs_images/batch=b1/samples.parquet")
    (merged,) = [u for u in manifest.column("source_uris").to_pylist() if len(u) == 2]
    assert {u.rsplit("/", 1)[1] for u in merged} == {"good.jpg", "copy_of_good.jpg"}
    reasons = lineage.query("SELECT reason FROM quarantine ORDER BY reason").column(0)
    assert reasons.to_pylist() == sorted(expected.values())


def test_images_table_holds_normalised_rgb_for_every_sample(tmp_path):
    bad_corpus(tmp_path / "in")
    report, store, _ = run(tmp_path, str(tmp_path / "in"))
    images = pq.read_table(report.images_url)
    manifest = store.read_table("rs_images/batch=b1/samples.parquet")
    assert sorted(images.column("sample_id").to_pylist()) == sorted(
        manifest.column("sample_id").to_pylist()
    )
    modes = {r["orig_mode"]: r["normalisation"] for r in manifest.to_pylist()}
    assert modes["CMYK"] == "mode CMYK->RGB" and modes["P"] == "mode P->RGB"
    # Untouched RGB files are kept byte for byte; normalised ones are stored as PNG.
    by_id = {r["sample_id"]: r for r in images.to_pylist()}
    for row in manifest.to_pylist():
        stored = by_id[row["sample_id"]]
        assert stored["format"] == ("JPEG" if row["orig_mode"] == "RGB" else "PNG")
        assert Image.open(io.BytesIO(stored["data"])).convert("RGB").mode == "RGB"
    good = encode(noise_rgb(seed=1), "JPEG")
    assert by_id[sample_id_of(good)]["data"] == good


@pytest.fixture
def s3_server():
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_imagefolder_on_s3_ingests_like_a_local_one(tmp_path, s3_server, monkeypatch):
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    options = {"endpoint_url": s3_server}
    fs = s3fs.S3FileSystem(client_kwargs=options)
    fs.mkdir("landing")
    expected = bad_corpus(tmp_path / "in")
    fs.put(str(tmp_path / "in") + "/", "landing/b1/", recursive=True)
    report, store, _ = run(tmp_path, "s3://landing/{batch}", {"client_kwargs": options})
    assert report.counts.unique == 3 and report.counts.quarantined == len(expected)
    uris = store.read_table("rs_images/batch=b1/samples.parquet").column("source_uris")
    assert all(u.startswith("s3://landing/b1/") for row in uris.to_pylist() for u in row)
