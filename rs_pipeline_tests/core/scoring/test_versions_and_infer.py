import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem

from rs_pipeline.core.config import ScorerSpec, ScoringConfig
from rs_pipeline.core.scoring import versions
from rs_pipeline.core.scoring.baselines import RandomScorer
from rs_pipeline.core.scoring.clip_head import ClipHeadScorer
from rs_pipeline.core.scoring.infer import PairStream, PairText, score_pairs
from rs_pipeline.core.scoring.versions import (
    cached_weights_digest,
    scorer_version,
    spec_for,
    weights_digest,
)
from rs_pipeline.core.sources.synthrs import encode_png, render_tile


def test_version_is_name_plus_recipe_hash_and_changes_with_the_recipe():
    a = ScorerSpec(name="clip-head", backend="clip_head")
    b = ScorerSpec(name="clip-head", backend="clip_head", seed=1)
    va, vb = scorer_version(a), scorer_version(b)
    assert va.startswith("clip-head-") and len(va) == len("clip-head-") + 6
    assert va == scorer_version(ScorerSpec(name="clip-head", backend="clip_head"))
    assert va != vb


def test_the_snapshot_cadence_is_not_part_of_the_version():
    """How often a run snapshots changes no weights: a new cadence keeps every partition."""
    spec = ScorerSpec(name="clip-head", backend="clip_head")
    every_5 = ScorerSpec(name="clip-head", backend="clip_head", checkpoint_every=5)
    assert scorer_version(spec) == scorer_version(every_5)


def test_registered_checkpoint_version_depends_on_its_weights(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights-1")
    spec = ScorerSpec(name="ext", backend="clip_head", checkpoint=str(tmp_path))
    v1 = scorer_version(spec)
    (tmp_path / "model.safetensors").write_bytes(b"weights-2")
    assert scorer_version(spec) != v1


def counting_reads(monkeypatch) -> list[int]:
    """Count whole-weights hashes (each reads every byte) through `versions._hash_files`."""
    reads, real = [], versions._hash_files

    def counted(files):
        reads.append(len(files))
        return real(files)

    monkeypatch.setattr(versions, "_hash_files", counted)
    return reads


def test_unchanged_weights_are_read_once_per_process(tmp_path, monkeypatch):
    (tmp_path / "model.safetensors").write_bytes(b"weights-1")
    reads = counting_reads(monkeypatch)
    spec = ScorerSpec(name="ext", backend="clip_head", checkpoint=str(tmp_path))
    first = [scorer_version(spec) for _ in range(5)]
    assert len(set(first)) == 1 and len(reads) == 1
    assert cached_weights_digest(tmp_path) == weights_digest(tmp_path)  # the same digest
    assert len(reads) == 2  # weights_digest itself always reads


def test_changed_weights_are_read_again(tmp_path, monkeypatch):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights-1")
    reads = counting_reads(monkeypatch)
    before = cached_weights_digest(tmp_path)
    stat = weights.stat()
    weights.write_bytes(b"weights-2")  # same size: only the times tell the change
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    after = cached_weights_digest(tmp_path)
    assert after != before and after == weights_digest(tmp_path) and len(reads) == 3
    (tmp_path / "extra.safetensors").write_bytes(b"more")  # a new file is a change too
    assert cached_weights_digest(tmp_path) != after


def test_unknown_version_lists_the_known_ones():
    with pytest.raises(KeyError, match="known: .*clip-head-"):
        spec_for(ScoringConfig(), "clip-head-000000")


def write_images(path, n: int, row_group: int) -> dict[str, list[PairText]]:
    rows, texts = [], {}
    for i in range(n):
        image, _ = render_tile(i, "harbor")
        sid = f"s{i:03d}"
        rows.append({"sample_id": sid, "format": "PNG", "data": encode_png(image)})
        texts[sid] = [PairText(f"{sid}-{k}", f"caption {k} of {i}") for k in range(3)]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group)
    return texts


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_scores_equal_direct_scores_and_cover_every_pair_once(tmp_path, workers):
    texts = write_images(tmp_path / "images.parquet", 10, row_group=3)
    scorer = ClipHeadScorer(seed=0)
    stream = PairStream(LocalFileSystem(), str(tmp_path / "images.parquet"), texts)
    got = {}
    for refs, scores in score_pairs(scorer, stream, batch_size=4, num_workers=workers):
        assert len(refs) <= 4
        for ref, s in zip(refs, scores, strict=True):
            assert ref.caption_id not in got
            got[ref.caption_id] = s
    assert len(got) == 30
    image, _ = render_tile(2, "harbor")
    direct = scorer.score([image], ["caption 1 of 2"])[0]
    assert got["s002-1"] == pytest.approx(direct, rel=1e-4, abs=1e-5)


def test_baseline_scorers_stream_without_tensors(tmp_path):
    texts = write_images(tmp_path / "images.parquet", 4, row_group=2)
    stream = PairStream(LocalFileSystem(), str(tmp_path / "images.parquet"), texts)
    scores = [s for _, batch in score_pairs(RandomScorer(0), stream, batch_size=5) for s in batch]
    assert len(scores) == 12 and all(0 <= s < 1 for s in scores)


def interleaved_texts(n_images: int) -> list[dict]:
    """Texts in captioner-major order (as the captions stage writes them), with images that
    have none and texts whose image is not in the batch."""
    rows = []
    for captioner in range(3):
        for i in range(n_images + 2):  # s010, s011: no such image
            if i % 4 == 1:
                continue  # s001, s005, s009: no texts
            for k in range(captioner + 1):
                rows.append({"sample_id": f"s{i:03d}", "caption_id": f"s{i:03d}-{captioner}-{k}",
                             "text": f"text {captioner}/{k} of {i}"})  # fmt: skip
    return rows


@pytest.mark.parametrize("window", [1, 4, 1000])
def test_spilled_texts_stream_the_same_pairs_in_the_same_order_as_a_dict(tmp_path, window):
    from rs_pipeline.core.scoring.infer import spill_texts

    write_images(tmp_path / "images.parquet", 10, row_group=3)
    rows = interleaved_texts(10)
    table = pa.Table.from_pylist(rows)
    image_ids = pq.read_table(tmp_path / "images.parquet").column("sample_id").combine_chunks()
    (tmp_path / "spill").mkdir()
    spilled = spill_texts(lambda: table.to_batches(max_chunksize=5), image_ids,
                          str(tmp_path / "spill"), window=window)  # fmt: skip
    naive: dict[str, list[PairText]] = {}  # the reference: every text held in a dict
    for r in rows:
        naive.setdefault(r["sample_id"], []).append(PairText(r["caption_id"], r["text"]))
    fs, path = LocalFileSystem(), str(tmp_path / "images.parquet")

    def pairs(texts):
        return [(ref, text) for ref, _, text, _ in PairStream(fs, path, texts)]

    expected = pairs(naive)
    assert pairs(spilled) == expected
    assert spilled.total == len(expected) == sum(1 for r in rows if r["sample_id"] < "s010")
