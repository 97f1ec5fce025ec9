"""Readers never take a half-published ingest partition: no samples marker, no batch."""

import pyarrow as pa
import pytest

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.ingest.images import load_image_bytes, load_images
from rs_pipeline.core.layout import (
    IMAGES_FILE,
    SAMPLES_FILE,
    BatchNotIngested,
    images_dir,
    require_ingested,
)
from rs_pipeline.core.records import IMAGE_SCHEMA
from rs_pipeline_tests.factories import encode, noise_rgb


@pytest.fixture
def half_published(tmp_path) -> ArtifactStore:
    """What a run that died between moving images.parquet in and the marker leaves."""
    store = ArtifactStore(str(tmp_path))
    row = {"sample_id": "s1", "format": "PNG", "data": encode(noise_rgb(seed=1), "PNG")}
    store.write_table(pa.Table.from_pylist([row], schema=IMAGE_SCHEMA), images_dir("b1"),
                      IMAGES_FILE)  # fmt: skip
    return store


@pytest.mark.parametrize("reader", [load_images, load_image_bytes])
def test_images_without_the_samples_marker_are_refused_naming_the_asset_to_materialize(
    half_published, reader
):
    with pytest.raises(BatchNotIngested, match=r"batch b1 is not fully ingested.*rs_images\[b1\]"):
        reader(half_published, "b1", {"s1"})


def test_the_same_partition_reads_once_its_marker_is_published(half_published):
    half_published.write_table(pa.table({"sample_id": ["s1"]}), images_dir("b1"), SAMPLES_FILE)
    assert require_ingested(half_published, "b1") == images_dir("b1")
    assert load_images(half_published, "b1", {"s1"})["s1"].size == (48, 48)
    assert load_image_bytes(half_published, "b1", {"s1"})["s1"][0] == "PNG"


def test_a_batch_never_ingested_is_refused_the_same_way(tmp_path):
    with pytest.raises(BatchNotIngested, match="materialize rs_images"):
        require_ingested(ArtifactStore(str(tmp_path)), "b9")
