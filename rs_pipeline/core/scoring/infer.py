"""Streaming batched inference: every (image, text) pair of a batch through one scorer.

Images stream from the batch's Parquet one row group at a time and pairs flow through a
DataLoader in fixed-size batches, so memory stays bounded whatever the batch size. The texts of
a large batch are spilled to local disk in image order first (`spill_texts`), so memory stays
flat in the number of pairs as well, not only in the number of images. Learned scorers prepare
tensors inside the workers (collate_fn) and pin memory on CUDA; baselines score the raw pairs.
"""

from __future__ import annotations

import bisect
import io
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from rs_pipeline.core.scoring.base import Scorer, TrainableScorer


@dataclass(frozen=True)
class PairRef:
    """Which pair a score belongs to."""

    sample_id: str
    caption_id: str


@dataclass(frozen=True)
class PairText:
    """A text to score against an image (a caption candidate, or an answer to a question)."""

    caption_id: str
    text: str
    question: str | None = None


SPILL_WINDOW = 32_768  # texts per spill file: the most one read of them holds in memory
_MAX_SPILL_FILES = 512  # open at once while spilling; the window grows past this many


@dataclass(frozen=True)
class SpilledTexts:
    """Every image's texts in local Arrow files, bucketed by image position (see spill_texts).

    File `k.arrow` under `folder` holds the texts of image positions [bounds[k], bounds[k+1])
    with their input row, so reading one file gives those images' texts in input order.
    """

    folder: str
    bounds: tuple[int, ...]
    total: int  # texts whose image is in the batch

    def groups(self, start: int, stop: int) -> Iterator[tuple[int, list[PairText]]]:
        """(image position, its texts in input order) for every position in [start, stop)
        with texts, ascending."""
        first = max(bisect.bisect_right(self.bounds, start) - 1, 0)
        for k in range(first, len(self.bounds) - 1):
            if self.bounds[k] >= stop:
                break
            path = os.path.join(self.folder, f"{k}.arrow")
            if not os.path.exists(path):  # a window of images without texts
                continue
            with pa.memory_map(path) as source:
                table = pa.ipc.open_file(source).read_all()
            pos = table.column("pos")
            table = table.filter(pc.and_(pc.greater_equal(pos, start), pc.less(pos, stop)))
            table = table.sort_by([("pos", "ascending"), ("row", "ascending")])
            cols = (table.column(c).to_pylist() for c in ("pos", "caption_id", "text"))
            rows = zip(*cols, strict=True)
            for p, group in itertools.groupby(rows, key=lambda r: r[0]):
                yield p, [PairText(cid, text) for _, cid, text in group]


def _positions(sample_ids: pa.Array, image_ids: pa.Array) -> np.ndarray:
    """Each text's image position in the batch's images.parquet, -1 where it has none."""
    return pc.index_in(sample_ids, value_set=image_ids).fill_null(-1).to_numpy()


def spill_texts(
    batches: Callable[[], Iterable[pa.RecordBatch]],
    image_ids: pa.Array,
    folder: str,
    window: int = SPILL_WINDOW,
) -> SpilledTexts:
    """Bucket texts (`batches()`: record batches of sample_id, caption_id, text, read twice)
    by the position of their image in `image_ids` into Arrow files under `folder`.

    A streaming bucket sort: one pass counts texts per image, which cuts the image positions
    into windows of about `window` texts; a second pass appends each text to its window's file.
    Memory holds one record batch and per-image counts, never every text of the batch.
    """
    counts = np.zeros(len(image_ids), dtype=np.int64)
    for rb in batches():
        pos = _positions(rb.column("sample_id"), image_ids)
        counts += np.bincount(pos[pos >= 0], minlength=len(image_ids))
    total = int(counts.sum())
    window = max(window, -(-total // _MAX_SPILL_FILES))
    before = np.cumsum(counts) - counts  # texts of the images before each position
    new_window = np.diff(before // window, prepend=-1) > 0  # (n_images,)
    window_of = np.cumsum(new_window) - 1  # (n_images,): the file each image's texts go to
    bounds = (*np.flatnonzero(new_window).tolist(), len(image_ids))
    writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
    schema = pa.schema([("pos", pa.int64()), ("row", pa.int64()),
                        ("caption_id", pa.string()), ("text", pa.string())])  # fmt: skip
    row = 0
    try:
        for rb in batches():
            pos = _positions(rb.column("sample_id"), image_ids)
            keep = pos >= 0
            rows = np.arange(row, row + len(pos))[keep]  # each text's input row: its order
            row += len(pos)
            mask = pa.array(keep)
            cols = [pa.array(pos[keep]), pa.array(rows)]
            cols += [rb.column(c).filter(mask) for c in ("caption_id", "text")]
            wins = window_of[pos[keep]]
            order = np.argsort(wins, kind="stable")
            part = pa.RecordBatch.from_arrays(cols, schema=schema).take(pa.array(order))
            wins = wins[order]
            for k, lo, hi in _runs(wins):
                if k not in writers:
                    writers[k] = pa.ipc.new_file(os.path.join(folder, f"{k}.arrow"), schema)
                writers[k].write_batch(part.slice(lo, hi - lo))
    finally:
        for w in writers.values():
            w.close()
    return SpilledTexts(folder, bounds, total)


def _runs(values: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(value, start, stop) of each run of equal values in a sorted array."""
    if not len(values):
        return
    starts = np.flatnonzero(np.diff(values, prepend=values[:1] - 1))
    stops = [*starts[1:].tolist(), len(values)]
    for start, stop in zip(starts.tolist(), stops, strict=True):
        yield int(values[start]), start, stop


class PairStream(IterableDataset):
    """(PairRef, image, text, question) for every text of every image, row group by row group.

    `texts` maps sample_id to its texts, or is a `SpilledTexts` (large batches). With several
    workers, row groups are dealt round-robin (`rg % workers == id`), so each pair is produced
    exactly once. Pairs come in image order, then in the texts' own order.
    """

    def __init__(
        self, fs, images_path: str, texts: Mapping[str, list[PairText]] | SpilledTexts
    ) -> None:
        self.fs, self.images_path, self.texts = fs, images_path, texts

    def _texts_of(self, sids: list[str], first: int) -> Iterator[tuple[int, list[PairText]]]:
        """(index in the row group, texts) for each image of a row group that has texts."""
        if isinstance(self.texts, SpilledTexts):
            for pos, texts in self.texts.groups(first, first + len(sids)):
                yield pos - first, texts
            return
        for i, sid in enumerate(sids):
            texts = self.texts.get(sid)
            if texts:
                yield i, texts

    def __iter__(self) -> Iterator[tuple[PairRef, Image.Image, str, str | None]]:
        info = get_worker_info()
        wid, workers = (info.id, info.num_workers) if info else (0, 1)
        with self.fs.open(self.images_path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
            firsts = np.cumsum([0, *sizes]).tolist()  # position of each row group's first image
            for rg in range(wid, pf.num_row_groups, workers):
                table = pf.read_row_group(rg, columns=["sample_id", "data"])
                sids, data = table.column(0).to_pylist(), table.column(1)
                for i, texts in self._texts_of(sids, firsts[rg]):
                    image = Image.open(io.BytesIO(data[i].as_py())).convert("RGB")
                    for t in texts:
                        yield PairRef(sids[i], t.caption_id), image, t.text, t.question


class _Collate:
    """Batches pairs; learned scorers turn them into tensors here (inside the worker)."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.tensors = isinstance(scorer, TrainableScorer)

    def __call__(self, items):
        refs, images, texts, questions = (list(x) for x in zip(*items, strict=True))
        if self.tensors:
            return refs, self.scorer.prepare(images, texts, questions)
        return refs, (images, texts, questions)


def score_pairs(
    scorer: Scorer,
    stream: PairStream,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str = "cpu",
) -> Iterator[tuple[list[PairRef], list[float]]]:
    """Yield (refs, scores) batch by batch; nothing accumulates in memory."""
    cuda = device.startswith("cuda")
    loader = DataLoader(
        stream,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_Collate(scorer),
        pin_memory=cuda,
    )
    if isinstance(scorer, torch.nn.Module):
        scorer.to(device).eval()
    with torch.inference_mode():
        for refs, payload in loader:
            if isinstance(payload, dict):
                batch = {k: v.to(device, non_blocking=cuda) for k, v in payload.items()}
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    scores = scorer(**batch).float().cpu().tolist()  # (B,)
            else:
                scores = scorer.score(*payload)
            yield refs, scores
