"""Reading an ingested batch back as SampleViews, a bounded chunk at a time."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.captions.base import SampleView
from rs_pipeline.core.layout import images_dir
from rs_pipeline.core.sources.synthrs import TileAnnotation


def view_of(row: dict, image: Image.Image) -> SampleView:
    """A manifest row and its decoded image as a SampleView."""
    ann = row.get("annotation_json")
    return SampleView(
        sample_id=row["sample_id"],
        image=image,
        label=row.get("label"),
        annotation=TileAnnotation.from_json(ann) if ann else None,
        gsd_m=row.get("gsd_m"),
        sensor=row.get("sensor"),
        lat=row.get("lat"),
        lon=row.get("lon"),
        captions=tuple(row.get("captions") or ()),
        source=row.get("source"),
    )


def load_manifest(store: ArtifactStore, batch: str) -> pa.Table:
    """The batch's `rs_images` manifest; fails saying which asset to materialize."""
    return store.read_table(images_dir(batch), "samples.parquet")


def iter_views(store: ArtifactStore, batch: str, chunk_size: int) -> Iterator[list[SampleView]]:
    """SampleViews of a batch in chunks of `chunk_size` images (bounded memory)."""
    rows = {r["sample_id"]: r for r in load_manifest(store, batch).to_pylist()}
    path = store.path(images_dir(batch), "images.parquet")
    with store.fs.open(path, "rb") as fh:
        for record_batch in pq.ParquetFile(fh).iter_batches(batch_size=chunk_size):
            chunk = []
            for sid, data in zip(
                record_batch.column("sample_id").to_pylist(),
                record_batch.column("data").to_pylist(),
                strict=True,
            ):
                image = Image.open(io.BytesIO(data)).convert("RGB")
                chunk.append(view_of(rows[sid], image))
            yield chunk
