"""Ingest against hostile inputs: odd names, special files, symlinks, and crashes mid-write."""

import os
import signal
import urllib.parse

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import config_from_dict
from rs_pipeline.core.ingest.stage import run_ingest
from rs_pipeline.core.layout import IMAGES_ASSET, batches_under
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.sources.files import escape_name, list_files, open_fs
from rs_pipeline.core.sources.imagefolder import ImageFolderSource
from rs_pipeline.core.sources.manifest import ManifestSource
from rs_pipeline_tests.factories import encode, noise_rgb

EXTS = (".jpg", ".png")


def good_folder(root):
    (root / "forest").mkdir(parents=True)
    (root / "forest" / "a.jpg").write_bytes(encode(noise_rgb(seed=1), "JPEG"))
    (root / "forest" / "b.png").write_bytes(encode(noise_rgb(seed=2), "PNG"))


def ingest(tmp_path, source_path):
    cfg = config_from_dict(
        {
            "sources": [{"kind": "imagefolder", "name": "user", "path": str(source_path)}],
            "storage": {"root": str(tmp_path / "out"), "lineage_db": str(tmp_path / "l.duckdb")},
        }
    )
    store, lineage = ArtifactStore(cfg.storage.root), LineageStore(cfg.storage.lineage_db)
    return (lambda: run_ingest(cfg, "b1", store, lineage, "run-1")), store, lineage


@pytest.fixture
def no_hang():
    """Fail, rather than hang the suite, if a read blocks (a FIFO opened for reading)."""
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("ingest blocked on a read"))
    signal.alarm(20)
    yield
    signal.alarm(0)


# --- 1. names that are not UTF-8 -------------------------------------------------------------


def test_a_non_utf8_file_name_ingests_with_a_percent_escaped_uri_that_round_trips(tmp_path):
    root = tmp_path / "in"
    good_folder(root)
    raw = os.fsencode(root / "forest") + b"/bad_\xff\xfe_name.jpg"
    with open(raw, "wb") as fh:
        fh.write(encode(noise_rgb(seed=3), "JPEG"))
    run, store, lineage = ingest(tmp_path, root)
    report = run()
    assert (report.counts.unique, report.counts.quarantined) == (3, 0)
    uris = [
        u
        for us in store.read_table(f"{IMAGES_ASSET}/batch=b1/samples.parquet")
        .column("source_uris")
        .to_pylist()
        for u in us
    ]
    (odd,) = [u for u in uris if "bad_" in u]
    assert odd.endswith("/bad_%FF%FE_name.jpg")
    assert urllib.parse.unquote_to_bytes(odd) == raw
    assert lineage.query("SELECT count(*) FROM samples").column(0)[0].as_py() == 3


def test_a_non_utf8_class_folder_gives_an_escaped_label(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    folder = os.fsencode(root) + b"/caf\xe9"
    os.mkdir(folder)
    with open(folder + b"/x.jpg", "wb") as fh:
        fh.write(encode(noise_rgb(seed=4), "JPEG"))
    (item,) = ImageFolderSource("u", str(root), EXTS).iter_items("b1")
    assert item.problem is None and item.label == "caf%E9"


def test_valid_names_are_left_unchanged_by_escaping():
    assert escape_name("s3://bucket/fôret/50%.jpg") == "s3://bucket/fôret/50%.jpg"


# --- 2. a stage publishes all of its outputs or none -----------------------------------------


def fail_after_first_write(monkeypatch):
    original = ArtifactStore.write_table

    def write_then_fail(self, table, *parts):
        original(self, table, *parts)
        raise RuntimeError("injected crash after the first table write")

    monkeypatch.setattr(ArtifactStore, "write_table", write_then_fail)


def partition_files(store):
    folder = store.path(f"{IMAGES_ASSET}/batch=b1")
    return sorted(store.fs.ls(folder, detail=False)) if store.fs.exists(folder) else []


def test_a_crash_after_the_first_table_write_publishes_nothing_and_a_rerun_succeeds(
    tmp_path, monkeypatch
):
    good_folder(tmp_path / "in")
    run, store, lineage = ingest(tmp_path, tmp_path / "in")
    with monkeypatch.context() as m:
        fail_after_first_write(m)
        with pytest.raises(RuntimeError, match="injected"):
            run()
    assert partition_files(store) == []
    assert batches_under(store, IMAGES_ASSET, "samples.parquet") == []
    assert store.fs.find(store.path(IMAGES_ASSET)) == []  # staging cleaned up too
    assert lineage.query("SELECT count(*) FROM samples").column(0)[0].as_py() == 0
    report = run()
    assert report.counts.unique == 2
    names = [p.rsplit("/", 1)[1] for p in partition_files(store)]
    assert names == ["images.parquet", "quarantine.parquet", "samples.parquet"]


def test_a_failed_rerun_leaves_the_previous_partition_whole(tmp_path, monkeypatch):
    good_folder(tmp_path / "in")
    run, store, lineage = ingest(tmp_path, tmp_path / "in")
    run()
    before = {p: store.fs.cat_file(p) for p in partition_files(store)}
    (tmp_path / "in" / "forest" / "c.jpg").write_bytes(encode(noise_rgb(seed=9), "JPEG"))

    def broken(*args, **kwargs):
        raise RuntimeError("lineage down")

    monkeypatch.setattr(lineage, "replace_partitions", broken)
    with pytest.raises(RuntimeError, match="lineage down"):
        run()
    assert {p: store.fs.cat_file(p) for p in partition_files(store)} == before


def test_staging_left_by_a_killed_run_is_removed_by_the_next_run(tmp_path):
    good_folder(tmp_path / "in")
    run, store, _ = ingest(tmp_path, tmp_path / "in")
    leftover = tmp_path / "out" / IMAGES_ASSET / "_staging" / "batch=b1" / "dead"
    leftover.mkdir(parents=True)
    (leftover / "images.parquet").write_bytes(b"half a file")
    run()
    assert not leftover.exists()
    assert batches_under(store, IMAGES_ASSET, "samples.parquet") == ["b1"]


# --- 3. only regular files are read ----------------------------------------------------------


def test_a_fifo_is_quarantined_unread_instead_of_hanging_ingest(tmp_path, no_hang):
    good_folder(tmp_path / "in")
    os.mkfifo(tmp_path / "in" / "forest" / "fifo.jpg")
    run, store, _ = ingest(tmp_path, tmp_path / "in")
    report = run()
    assert report.counts.reconciles and report.counts.unique == 2
    (row,) = store.read_table(f"{IMAGES_ASSET}/batch=b1/quarantine.parquet").to_pylist()
    assert row["reason"] == "not_a_regular_file" and row["uri"].endswith("fifo.jpg")


def test_s3_reads_get_bounded_timeouts_unless_the_user_set_them():
    pytest.importorskip("s3fs")
    fs, _ = open_fs("s3://bucket/x", {"anon": True, "config_kwargs": {"read_timeout": 5}})
    assert fs.config_kwargs == {"read_timeout": 5, "connect_timeout": 10}


# --- 4. symlinks cannot reach outside the source's root --------------------------------------


def test_imagefolder_quarantines_a_symlink_to_an_image_outside_its_root(tmp_path):
    good_folder(tmp_path / "in")
    (tmp_path / "elsewhere.jpg").write_bytes(encode(noise_rgb(seed=5), "JPEG"))
    (tmp_path / "in" / "forest" / "escape.jpg").symlink_to(tmp_path / "elsewhere.jpg")
    (tmp_path / "in" / "forest" / "alias.jpg").symlink_to(tmp_path / "in" / "forest" / "a.jpg")
    items = {
        i.uri.rsplit("/", 1)[1]: i
        for i in ImageFolderSource("u", str(tmp_path / "in"), EXTS).iter_items("b1")
    }
    assert items["escape.jpg"].problem[0] == "path_outside_root"
    assert items["escape.jpg"].data is None
    assert items["alias.jpg"].problem is None  # a link that stays inside is a plain input


def test_a_linked_class_folder_is_quarantined_as_an_entry_not_walked_into(tmp_path):
    good_folder(tmp_path / "in")
    good_folder(tmp_path / "outside")
    (tmp_path / "in" / "meadow").symlink_to(tmp_path / "outside" / "forest")
    report = ingest(tmp_path, tmp_path / "in")[0]()
    assert report.counts.reconciles and report.counts.unique == 2
    assert report.counts.by_reason == {"not_in_layout": 1}


def test_the_local_listing_names_the_same_entries_as_fsspecs_walk(tmp_path):
    """`list_files` walks local roots with os.scandir; its entries must stay fsspec's."""
    good_folder(tmp_path / "in")
    (tmp_path / "in" / "forest" / "deep").mkdir()
    (tmp_path / "in" / "forest" / "deep" / "c.jpg").write_bytes(b"x")
    (tmp_path / "in" / "forest" / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / "in" / "forest" / "link.jpg").symlink_to(tmp_path / "in" / "forest" / "a.jpg")
    (tmp_path / "in" / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "in" / "lake").symlink_to(tmp_path / "in" / "forest")
    os.mkfifo(tmp_path / "in" / "forest" / "fifo.jpg")
    fs, root = open_fs(str(tmp_path / "in"))
    listed = list_files(fs, root)
    assert [path for path, _ in listed] == sorted(fs.find(root))
    plain = {path.rsplit("/", 1)[1] for path, is_plain in listed if is_plain}
    assert plain == {"a.jpg", "b.png", "c.jpg", ".hidden.jpg"}  # no link, FIFO or dangling


def test_a_root_reached_through_a_symlink_still_admits_its_files(tmp_path):
    good_folder(tmp_path / "real")
    (tmp_path / "via").symlink_to(tmp_path / "real")
    report = ingest(tmp_path, tmp_path / "via")[0]()
    assert report.counts.unique == 2 and report.counts.quarantined == 0


def test_manifest_quarantines_a_path_that_is_a_symlink_to_etc_passwd(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "ok.png").write_bytes(encode(noise_rgb(seed=6), "PNG"))
    (tmp_path / "img" / "passwd.png").symlink_to("/etc/passwd")
    pacsv.write_csv(pa.table({"path": ["img/ok.png", "img/passwd.png"]}), tmp_path / "m.csv")
    ok, bad = ManifestSource("m", str(tmp_path / "m.csv")).iter_items("b1")
    assert ok.problem is None and ok.data
    assert bad.problem[0] == "path_outside_root" and bad.data is None


@pytest.fixture
def s3_server(monkeypatch):
    moto_server = pytest.importorskip("moto.server")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_on_s3_a_crash_publishes_no_object_and_a_rerun_publishes_all(
    tmp_path, s3_server, monkeypatch
):
    good_folder(tmp_path / "in")
    options = {"client_kwargs": {"endpoint_url": s3_server}}
    store = ArtifactStore("s3://out", options)
    store.fs.mkdir("out")
    cfg = config_from_dict(
        {
            "sources": [{"kind": "imagefolder", "name": "user", "path": str(tmp_path / "in")}],
            "storage": {"root": "s3://out", "lineage_db": str(tmp_path / "l.duckdb")},
        }
    )
    lineage = LineageStore(cfg.storage.lineage_db)
    with monkeypatch.context() as m:
        fail_after_first_write(m)
        with pytest.raises(RuntimeError, match="injected"):
            run_ingest(cfg, "b1", store, lineage, "run-1")
    assert store.fs.find("out") == []
    run_ingest(cfg, "b1", store, lineage, "run-2")
    names = sorted(p.rsplit("/", 1)[1] for p in store.fs.find("out"))
    assert names == ["images.parquet", "quarantine.parquet", "samples.parquet"]
    assert batches_under(store, IMAGES_ASSET, "samples.parquet") == ["b1"]
