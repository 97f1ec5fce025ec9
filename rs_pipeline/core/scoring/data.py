"""Training data for score models: preference pairs of every batch, with their images."""

from __future__ import annotations

import re
from dataclasses import dataclass

from PIL import Image

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.ingest.images import load_images
from rs_pipeline.core.scoring.train import PairExample

_BATCH = re.compile(r"batch=([^/]+)/pairs\.parquet$")


@dataclass(frozen=True)
class PairData:
    """Train and validation pairs (split by image upstream) and the pool for warm starts."""

    train: list[PairExample]
    val: list[PairExample]
    pool: list[tuple[Image.Image, str]]  # (image, candidate text) of training images
    batches: list[str]


def materialized_batches(store: ArtifactStore) -> list[str]:
    """Batches whose `preference_pairs` exist under the artifact root, sorted."""
    if not store.exists("preference_pairs"):
        return []
    found = store.fs.glob(store.path("preference_pairs", "batch=*", "pairs.parquet"))
    return sorted(m.group(1) for f in found if (m := _BATCH.search(f)))


def load_pair_data(store: ArtifactStore, batches: list[str] | None = None) -> PairData:
    """Every pair of `batches` (default: all materialized) as PairExamples with images."""
    batches = batches if batches is not None else materialized_batches(store)
    if not batches:
        raise FileNotFoundError(
            f"no preference_pairs under {store.url('preference_pairs')}: materialize "
            "rs_images, caption_candidates and preference_pairs for at least one batch first"
        )
    train, val, pool = [], [], []
    for batch in batches:
        pairs = store.read_table("preference_pairs", f"batch={batch}", "pairs.parquet").to_pylist()
        images = load_images(store, batch, {p["sample_id"] for p in pairs})
        for p in pairs:
            ex = PairExample(images[p["sample_id"]], p["chosen"], p["rejected"], p["question"])
            (val if p["split"] == "val" else train).append(ex)
        caps = store.read_table("caption_candidates", f"batch={batch}", "captions.parquet")
        split = {p["sample_id"]: p["split"] for p in pairs}
        for c in caps.to_pylist():
            if c["status"] == "ok" and split.get(c["sample_id"]) == "train":
                pool.append((images[c["sample_id"]], c["text"]))
    return PairData(train, val, pool, batches)
