"""A selection as WebDataset tar shards: `<key>.{jpg,png}`, `<key>.txt`, `<key>.json` per pair.

Large-scale trainers (open_clip `--train-data 'shard-{000000..000009}.tar'`) stream these
directly; the Parquet manifest stays the source of truth, the shards are derived from it.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections import defaultdict

import pyarrow as pa

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.ingest.images import load_image_bytes

_EXT = {"JPEG": "jpg", "PNG": "png"}

# The pair fields each shard member carries in its `.json`.
_META_KEYS = ("selection", "sample_id", "caption_id", "batch", "score", "rank", "reason")


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # mtime 0: byte-identical re-runs
    tar.addfile(info, io.BytesIO(data))


def _shard(rows: list[dict], images: dict[str, tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for r in rows:
            fmt, data = images[r["sample_id"]]
            key = r["caption_id"]  # unique per pair, no dots: a valid WebDataset key
            _member(tar, f"{key}.{_EXT.get(fmt, 'png')}", data)
            _member(tar, f"{key}.txt", r["text"].encode())
            meta = {k: r[k] for k in _META_KEYS}
            _member(tar, f"{key}.json", json.dumps(meta, sort_keys=True).encode())
    return buf.getvalue()


def write_shards(
    store: ArtifactStore, folder: str, name: str, table: pa.Table, shard_size: int
) -> list[str]:
    """Write `<name>-NNNNNN.tar` shards of `shard_size` pairs, in rank order; their URLs."""
    rows = table.to_pylist()
    wanted: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        wanted[r["batch"]].add(r["sample_id"])
    images = {}
    for batch, ids in sorted(wanted.items()):
        images |= load_image_bytes(store, batch, ids)
    missing = {r["sample_id"] for r in rows} - set(images)
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} selected images are missing from rs_images (e.g. {min(missing)}): "
            "re-materialize rs_images for their batches"
        )
    stale = store.fs.glob(store.path(folder, f"{name}-*.tar"))
    if stale:
        store.fs.rm(stale)  # a smaller re-selection must not leave old shards behind
    urls = []
    for i in range(0, len(rows), shard_size):
        parts = (folder, f"{name}-{i // shard_size:06d}.tar")
        store.fs.makedirs(store.path(folder), exist_ok=True)
        store.fs.pipe_file(store.path(*parts), _shard(rows[i : i + shard_size], images))
        urls.append(store.url(*parts))
    return urls
