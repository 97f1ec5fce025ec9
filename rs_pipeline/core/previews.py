"""The first rows and the score values of what a stage wrote, read back from lineage: what an
asset's metadata shows a reviewer (a preview table, a histogram), with no Dagster in it.

Every query is bounded (`LIMIT`) except the score values, which are one float per pair; a
contact sheet reads only the first images of a batch.
Rows come back as flat records (one mapping per row, like `evaluation.tables`), ordered so the
same data gives the same preview.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pyarrow.parquet as pq
from PIL import Image

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.layout import IMAGES_FILE, images_dir
from rs_pipeline.core.lineage import LineageStore

Records = list[dict]
PREVIEW_ROWS = 8


def quarantine_head(lineage: LineageStore, batches: Sequence[str], k: int = PREVIEW_ROWS):
    """The first `k` quarantined inputs of `batches` (by batch, uri): why each was rejected."""
    return lineage.query(
        "SELECT batch, uri, reason, detail FROM quarantine WHERE list_contains(?, batch) "
        "ORDER BY batch, uri, reason LIMIT ?",
        [list(batches), k],
    ).to_pylist()


def caption_head(lineage: LineageStore, batches: Sequence[str], images: int = 2) -> Records:
    """Every candidate of the first `images` images of `batches`: the captioners side by side."""
    return lineage.query(
        "WITH firsts AS (SELECT DISTINCT batch, sample_id FROM captions "
        "WHERE list_contains(?, batch) ORDER BY batch, sample_id LIMIT ?) "
        "SELECT c.sample_id, c.captioner_id, c.degradation, c.status, c.quality, c.text "
        "FROM captions c JOIN firsts USING (batch, sample_id) "
        "ORDER BY c.batch, c.sample_id, c.captioner_id, c.caption_id",
        [list(batches), images],
    ).to_pylist()


def pair_head(lineage: LineageStore, batches: Sequence[str], k: int = PREVIEW_ROWS) -> Records:
    """The first `k` preference pairs of `batches`, one per kind first (a caption pair, a VQA
    pair, an imported one), then by pair id."""
    return lineage.query(
        "SELECT sample_id, kind, judge, split, question, chosen, rejected FROM ("
        "SELECT *, row_number() OVER (PARTITION BY kind ORDER BY batch, pair_id) AS nth "
        "FROM pairs WHERE list_contains(?, batch)) ORDER BY nth, kind LIMIT ?",
        [list(batches), k],
    ).to_pylist()


def score_values(lineage: LineageStore, version: str, batches: Sequence[str]) -> list[float]:
    """Every score `version` gave a pair of `batches` (for a histogram)."""
    return (
        lineage.query(
            "SELECT score FROM scores WHERE scorer_version = ? AND list_contains(?, batch) "
            "AND score IS NOT NULL ORDER BY batch, caption_id",
            [version, list(batches)],
        )
        .column("score")
        .to_pylist()
    )


def scored_extremes(
    lineage: LineageStore, version: str, batches: Sequence[str], k: int = 3
) -> Records:
    """The `k` highest and `k` lowest scored (image, text) pairs of `batches` under `version`,
    highest first, with the captioner and the degradation that wrote each text."""
    return lineage.query(
        "WITH scored AS (SELECT s.sample_id, s.score, c.captioner_id, c.degradation, c.text, "
        "row_number() OVER (ORDER BY s.score DESC, s.caption_id) AS top, "
        "row_number() OVER (ORDER BY s.score ASC, s.caption_id) AS bottom "
        "FROM scores s JOIN captions c USING (caption_id) "
        "WHERE s.scorer_version = ? AND list_contains(?, s.batch) AND s.score IS NOT NULL) "
        "SELECT sample_id, score, captioner_id, degradation, text FROM scored "
        "WHERE top <= ? OR bottom <= ? ORDER BY score DESC, sample_id",
        [version, list(batches), k, k],
    ).to_pylist()


def selection_summary(lineage: LineageStore, version: str) -> Records:
    """Per selection of `version`: pairs and images kept and the score at the cut."""
    return lineage.query(
        "SELECT selection, count(*) AS pairs, count(DISTINCT sample_id) AS images, "
        "min(score) AS cut_score, max(score) AS top_score FROM selections "
        "WHERE scorer_version = ? GROUP BY selection ORDER BY selection",
        [version],
    ).to_pylist()


def selection_head(lineage: LineageStore, version: str, k: int = 3) -> Records:
    """The `k` best-scored kept pairs of each selection of `version`, with why each was kept."""
    return lineage.query(
        "SELECT selection, score, sample_id, reason, text FROM ("
        "SELECT *, row_number() OVER (PARTITION BY selection ORDER BY score DESC, caption_id) "
        "AS nth FROM selections WHERE scorer_version = ?) WHERE nth <= ? "
        "ORDER BY selection, nth",
        [version, k],
    ).to_pylist()


def training_curves(history: Sequence[dict]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """A staged training history (`{"stage", "step", "loss", "val_accuracy"}` per evaluation,
    steps counted from 0 in each stage) as panels of per-stage curves over the global step."""
    panels: dict[str, dict[str, list[tuple[float, float]]]] = {"held-out accuracy": {}, "loss": {}}
    offset, last_stage, last_step = 0, None, 0
    for point in history:
        if point["stage"] != last_stage:  # a new stage restarts its step count
            offset, last_stage = offset + last_step, point["stage"]
        x, last_step = offset + point["step"], point["step"]
        for panel, key in (("held-out accuracy", "val_accuracy"), ("loss", "loss")):
            if point.get(key) is not None:
                panels[panel].setdefault(str(point["stage"]), []).append((x, point[key]))
    return {title: series for title, series in panels.items() if series}


def seed_metrics(runs: Sequence, results: Sequence, *, train_metric: str = "final_loss") -> Records:
    """One record per seed of a fine-tune: its training figure (`train_metric`, an attribute of
    each run), whether it was reused, and every `benchmark metric` it scored (`EvalResult`s)."""
    by_seed: dict[int, dict[str, float]] = {}
    for r in results:
        by_seed.setdefault(r.seed, {})[f"{r.benchmark} {r.metric}"] = r.value
    return [
        {
            "seed": run.seed,
            train_metric: getattr(run, train_metric),
            "reused": run.reused,
            **by_seed.get(run.seed, {}),
        }
        for run in runs
    ]


def contact_sheet(store: ArtifactStore, batch: str, k: int = PREVIEW_ROWS, side: int = 64) -> bytes:
    """PNG: the first `k` images of an ingested batch as `side`-pixel thumbnails in a row."""
    with store.fs.open(store.path(images_dir(batch), IMAGES_FILE), "rb") as fh:
        first = next(pq.ParquetFile(fh).iter_batches(batch_size=k, columns=["data"]), None)
    data = [] if first is None else first.column("data").to_pylist()
    sheet = Image.new("RGB", (max(len(data), 1) * (side + 2), side), "white")
    for i, raw in enumerate(data):
        thumb = Image.open(io.BytesIO(raw)).convert("RGB")
        thumb.thumbnail((side, side))
        sheet.paste(thumb, (i * (side + 2), 0))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()
