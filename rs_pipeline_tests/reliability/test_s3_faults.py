"""An artifact root on S3 that goes down mid-run or answers 5xx: a clear error, nothing
half-published, and a retry (or botocore's own retries) ends with the outputs of a run that
was never interrupted — every row of it, none lost.

Ingest and captions run through their core stage functions against moto's S3 on loopback;
the server is stopped and restarted on its port (moto keeps the objects) or told to answer
some requests with 500/503.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from rs_pipeline.core.artifacts import ArtifactStore, StoreUnreachable, store_of
from rs_pipeline.core.captions.stage import run_captions
from rs_pipeline.core.config import PipelineConfig, config_from_dict
from rs_pipeline.core.ingest import stage as ingest_stage
from rs_pipeline.core.ingest.images import load_images
from rs_pipeline.core.layout import (
    CAPTIONS_FILE,
    IMAGES_ASSET,
    IMAGES_FILE,
    SAMPLES_FILE,
    BatchNotIngested,
    batches_under,
    captions_dir,
    images_dir,
)
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline_tests.factories import encode, noise_rgb
from rs_pipeline_tests.s3.server import FaultyS3, faulty_s3

pytestmark = pytest.mark.slow  # ~30 s on 2 cores: five short runs and retry back-offs

BATCH = "b1"
# A stopped server refuses connections at once; one attempt each keeps the failing call short.
FAIL_FAST = {"connect_timeout": 2, "read_timeout": 5, "retries": {"max_attempts": 1}}
# Every table a run leaves, with the column that identifies a row.
OUTPUTS = {
    (images_dir(BATCH), SAMPLES_FILE): "sample_id",
    (images_dir(BATCH), "quarantine.parquet"): "uri",
    (images_dir(BATCH), IMAGES_FILE): "sample_id",
    (captions_dir(BATCH), CAPTIONS_FILE): "caption_id",
}
LINEAGE = {"samples": SAMPLES_FILE, "quarantine": "quarantine.parquet",
           "captions": CAPTIONS_FILE}  # fmt: skip


@dataclass
class Run:
    """One pipeline run (ingest, then captions) writing under its own prefix of the bucket."""

    cfg: PipelineConfig
    store: ArtifactStore
    lineage: LineageStore
    prefix: str

    def ingest(self):
        return ingest_stage.run_ingest(self.cfg, BATCH, self.store, self.lineage, "run-1")

    def captions(self):
        return run_captions(self.cfg, BATCH, self.store, self.lineage, "run-1")

    def outputs(self) -> dict[str, list[dict]]:
        """Every output table's rows, sorted by their id."""
        return {
            name: sorted(self.store.read_table(folder, name).to_pylist(), key=lambda r: r[key])
            for (folder, name), key in OUTPUTS.items()
        }


def make_run(server: FaultyS3, inputs: Path, home: Path, config_kwargs: dict | None = None) -> Run:
    """A run on a fresh prefix; `config_kwargs` go to botocore (None: the pipeline's own)."""
    prefix = f"rel-{uuid.uuid4().hex[:10]}"
    options = {"endpoint_url": server.s3.endpoint}
    if config_kwargs is not None:
        options["config_kwargs"] = config_kwargs
    cfg = config_from_dict({
        "preset": "tiny",
        "sources": [{"kind": "synthrs", "name": "synthrs", "count": 12, "size": 48},
                    {"kind": "imagefolder", "name": "user", "path": str(inputs)}],
        "storage": {"root": f"s3://{server.s3.bucket}/{prefix}",
                    "lineage_db": str(home / f"{prefix}.duckdb"),
                    "work_dir": str(home / "work"), "storage_options": options},
    })  # fmt: skip
    return Run(cfg, store_of(cfg), LineageStore(cfg.storage.lineage_db), prefix)


@pytest.fixture(scope="module")
def server() -> Iterator[FaultyS3]:
    """The server, with the fake credentials in the environment for the whole module."""
    with faulty_s3() as s3, pytest.MonkeyPatch.context() as mp:
        s3.s3.set_env(mp, endpoint_in_env=False)
        yield s3


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A user folder with an image, its duplicate and a corrupt file, so every table has rows."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "forest").mkdir()
    image = encode(noise_rgb(seed=1), "PNG")
    (root / "forest" / "a.png").write_bytes(image)
    (root / "forest" / "a_copy.png").write_bytes(image)
    (root / "forest" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return root


@pytest.fixture
def new_run(server: FaultyS3, inputs: Path, tmp_path: Path) -> Callable[..., Run]:
    return lambda config_kwargs=None: make_run(server, inputs, tmp_path, config_kwargs)


@pytest.fixture(scope="module")
def reference(server: FaultyS3, inputs: Path, tmp_path_factory) -> dict[str, list[dict]]:
    """What an uninterrupted run writes."""
    run = make_run(server, inputs, tmp_path_factory.mktemp("reference"))
    run.ingest()
    run.captions()
    return run.outputs()


@pytest.fixture
def same_as_reference(reference, record_property) -> Callable[[Run], None]:
    """Check a run against the uninterrupted one: same rows (none lost, none extra) and
    lineage that reconciles. The rows checked and lost are recorded for the reliability
    totals (benchmarks/reliability.py)."""

    def check(run: Run) -> None:
        got = run.outputs()
        lost = {name: [r for r in rows if r not in got[name]] for name, rows in reference.items()}
        record_property("rows_checked", sum(len(rows) for rows in reference.values()))
        record_property("rows_lost", sum(len(rows) for rows in lost.values()))
        for name, rows in reference.items():
            assert rows, f"the reference run wrote no {name}"
            assert lost[name] == [], f"rows lost from {name}: {len(lost[name])}"
            assert got[name] == rows
        for table, name in LINEAGE.items():
            (n,) = run.lineage.query(f"SELECT count(*) FROM {table}").column(0).to_pylist()
            assert n == len(got[name]), f"lineage {table} does not reconcile with {name}"

    return check


def _chain(err: BaseException | None) -> Iterator[BaseException]:
    """`err` and every exception it was raised while handling."""
    while err is not None:
        yield err
        err = err.__context__


def _published(server: FaultyS3, run: Run) -> list[str]:
    """Object keys inside the batch's published folders (staging excluded)."""
    keys = server.s3.keys(f"{run.prefix}/")
    return [k for k in keys if "/_staging/" not in k]


def test_a_store_down_between_ingest_and_captions_fails_naming_the_endpoint_and_a_retry_completes(
    server, new_run, same_as_reference
):
    run = new_run(FAIL_FAST)
    run.ingest()
    server.stop()
    try:
        with pytest.raises(StoreUnreachable, match="did not answer") as err:
            run.captions()
    finally:
        server.start()
    message = str(err.value)
    assert server.s3.endpoint in message and "endpoint_url" in message and run.prefix in message
    assert not any(
        k.startswith(f"{run.prefix}/{captions_dir(BATCH)}") for k in _published(server, run)
    )
    run.captions()  # the same run, retried once the server is back
    same_as_reference(run)


def test_a_store_down_while_ingest_writes_publishes_nothing_and_a_retry_completes(
    server, new_run, same_as_reference, monkeypatch
):
    run = new_run(FAIL_FAST)
    write = ArtifactStore.write_table

    def stop_before_quarantine(store, table: pa.Table, *parts: str) -> str:
        if parts[-1] == "quarantine.parquet":  # images.parquet is staged already
            server.stop()
        return write(store, table, *parts)

    monkeypatch.setattr(ArtifactStore, "write_table", stop_before_quarantine)
    try:
        with pytest.raises(StoreUnreachable, match="did not answer") as err:
            run.ingest()
    finally:
        server.start()
    monkeypatch.setattr(ArtifactStore, "write_table", write)
    # The write that failed; cleaning up staging then failed too and is what is raised.
    assert any("quarantine.parquet" in str(e) for e in _chain(err.value))
    assert _published(server, run) == []  # not even images.parquet
    assert batches_under(run.store, IMAGES_ASSET, SAMPLES_FILE) == []
    run.ingest()
    run.captions()
    same_as_reference(run)
    assert not [k for k in server.s3.keys(f"{run.prefix}/") if "/_staging/" in k]


def test_a_store_down_mid_publish_leaves_a_batch_no_reader_takes_and_a_retry_completes(
    server, new_run, same_as_reference, monkeypatch
):
    run = new_run(FAIL_FAST)
    move = type(run.store.fs).mv

    def stop_after_images(fs, src: str, dst: str, **kwargs):
        move(fs, src, dst, **kwargs)
        if dst.endswith(f"/{IMAGES_FILE}"):  # moved in; quarantine and the marker are not
            server.stop()

    monkeypatch.setattr(type(run.store.fs), "mv", stop_after_images)
    try:
        with pytest.raises(StoreUnreachable):
            run.ingest()
    finally:
        server.start()
    monkeypatch.setattr(type(run.store.fs), "mv", move)
    assert [k.rsplit("/", 1)[1] for k in _published(server, run)] == [IMAGES_FILE]
    assert batches_under(run.store, IMAGES_ASSET, SAMPLES_FILE) == []
    with pytest.raises(BatchNotIngested, match=rf"batch {BATCH} is not fully ingested"):
        load_images(run.store, BATCH, {"any"})
    run.ingest()
    run.captions()
    same_as_reference(run)


@pytest.mark.parametrize("every", [3, 7])
def test_transient_5xx_answers_are_retried_and_the_run_completes_unchanged(
    server, new_run, same_as_reference, every
):
    run = new_run()  # the pipeline's own client settings: nothing set for the test
    server.faults.arm(every=every, count=4)  # two 500s and two 503s
    try:
        run.ingest()
        run.captions()
        injected = list(server.faults.injected)
    finally:
        server.faults.arm(every=1, count=0)
        server.faults.injected.clear()
    assert len(injected) == 4 and {i[-3:] for i in injected} == {"500", "503"}
    same_as_reference(run)


def test_the_artifact_store_gets_bounded_s3_timeouts_unless_the_user_set_them():
    store = ArtifactStore("s3://bucket/x", {"anon": True, "config_kwargs": {"read_timeout": 5}})
    assert store.fs.config_kwargs == {"read_timeout": 5, "connect_timeout": 10}
