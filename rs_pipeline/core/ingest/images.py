"""Reading a batch's normalised images back from `rs_images` (what training and scoring see)."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
from PIL import Image

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.layout import IMAGES_FILE, require_ingested


def load_images(store: ArtifactStore, batch: str, wanted: set[str]) -> dict[str, Image.Image]:
    """RGB images of `wanted` sample ids in `batch`, streamed so only those are decoded."""
    path = store.path(require_ingested(store, batch), IMAGES_FILE)
    out = {}
    with store.fs.open(path, "rb") as fh:
        for rb in pq.ParquetFile(fh).iter_batches(batch_size=256, columns=["sample_id", "data"]):
            for sid, data in zip(rb.column(0).to_pylist(), rb.column(1).to_pylist(), strict=True):
                if sid in wanted:
                    out[sid] = Image.open(io.BytesIO(data)).convert("RGB")
    return out


def load_image_bytes(
    store: ArtifactStore, batch: str, wanted: set[str]
) -> dict[str, tuple[str, bytes]]:
    """(format, encoded bytes) of `wanted` sample ids in `batch`, as ingest kept them."""
    path = store.path(require_ingested(store, batch), IMAGES_FILE)
    out = {}
    with store.fs.open(path, "rb") as fh:
        for rb in pq.ParquetFile(fh).iter_batches(batch_size=256):
            for row in rb.to_pylist():
                if row["sample_id"] in wanted:
                    out[row["sample_id"]] = (row["format"], row["data"])
    return out
