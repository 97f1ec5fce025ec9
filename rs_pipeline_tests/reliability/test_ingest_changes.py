"""Ingest records what it decides about admitted images (issue 15 §2, part B): label
conflicts, animated images, EXIF orientation and bytes after a JPEG's end."""

import hashlib
import io

import duckdb
import pyarrow as pa
from PIL import Image

from rs_pipeline.core import lineage
from rs_pipeline.core.config import IngestConfig
from rs_pipeline.core.ingest.batch import ingest_items
from rs_pipeline.core.ingest.decode import Decoded, decode_image, strip_jpeg_trailer
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.records import SAMPLE_SCHEMA, SampleNote, to_table
from rs_pipeline.core.sources.base import RawItem
from rs_pipeline_tests.factories import encode, noise_rgb

NEW_COLUMNS = {"conflicting_labels", "notes"}


def item(uri: str, data: bytes, label: str | None = "forest") -> RawItem:
    return RawItem(uri, "src", "test", data, label=label)


def run(items):
    images = {}
    result = ingest_items(
        items, "b1", IngestConfig(max_side=64), lambda sid, fmt, data: images.__setitem__(sid, data)
    )
    assert result.counts.reconciles
    return result, images


def notes_of(sample, note: SampleNote) -> list[str]:
    return [n for n in sample.notes if n.startswith(f"{note}:")]


# --- label conflicts -------------------------------------------------------------------------


def test_one_image_under_two_labels_is_kept_unlabelled_with_a_label_conflict_note():
    png = encode(noise_rgb(seed=1), "PNG")
    result, images = run([item("forest/a.png", png, "forest"), item("river/a.png", png, "river")])
    (sample,) = result.samples
    assert sample.label is None
    assert sample.conflicting_labels == ["forest", "river"]
    (note,) = notes_of(sample, SampleNote.LABEL_CONFLICT)
    assert "forest" in note and "river" in note
    assert sample.source_uris == ["forest/a.png", "river/a.png"]
    assert result.quarantine == [] and len(images) == 1
    assert (result.counts.unique, result.counts.duplicates) == (1, 1)


def test_every_conflicting_label_is_named_in_a_single_note():
    png = encode(noise_rgb(seed=2), "PNG")
    labels = ["river", "forest", "river", "beach"]
    result, _ = run([item(f"{lab}/{i}.png", png, lab) for i, lab in enumerate(labels)])
    (sample,) = result.samples
    assert sample.label is None
    assert sample.conflicting_labels == ["beach", "forest", "river"]
    (note,) = notes_of(sample, SampleNote.LABEL_CONFLICT)
    assert all(lab in note for lab in labels)


def test_duplicates_that_agree_or_lack_a_label_are_no_conflict():
    png = encode(noise_rgb(seed=3), "PNG")
    result, _ = run(
        [item("u/a.png", png, None), item("f/a.png", png, "forest"), item("f/b.png", png, "forest")]
    )
    (sample,) = result.samples
    assert sample.label == "forest"  # a missing label is no claim; the first label fills it
    assert sample.conflicting_labels == [] and sample.notes == []


# --- animated images -------------------------------------------------------------------------


def _two_frames(fmt: str) -> bytes:
    red, blue = Image.new("RGB", (16, 12), (255, 0, 0)), Image.new("RGB", (16, 12), (0, 0, 255))
    buf = io.BytesIO()
    red.save(buf, format=fmt, save_all=True, append_images=[blue], duration=100, loop=0)
    return buf.getvalue()


def test_animated_gif_keeps_its_first_frame_and_says_so():
    result, images = run([item("a.gif", _two_frames("GIF"))])
    (sample,) = result.samples
    (note,) = notes_of(sample, SampleNote.ANIMATED_FIRST_FRAME)
    assert "2 frames" in note
    assert "frame 1 of 2" in sample.normalisation
    stored = Image.open(io.BytesIO(images[sample.sample_id]))
    assert getattr(stored, "n_frames", 1) == 1
    assert stored.convert("RGB").getpixel((0, 0)) == (255, 0, 0)


def test_animated_png_is_stored_as_its_first_frame_not_the_original_file():
    apng = _two_frames("PNG")
    assert Image.open(io.BytesIO(apng)).n_frames == 2
    result, images = run([item("a.png", apng)])
    (sample,) = result.samples
    assert notes_of(sample, SampleNote.ANIMATED_FIRST_FRAME)
    assert images[sample.sample_id] != apng
    assert getattr(Image.open(io.BytesIO(images[sample.sample_id])), "n_frames", 1) == 1


def test_still_image_has_no_notes():
    result, _ = run([item("a.png", encode(noise_rgb(seed=4), "PNG"))])
    assert result.samples[0].notes == [] and result.samples[0].normalisation == ""


# --- EXIF orientation ------------------------------------------------------------------------


def _jpeg_with_orientation(orientation: int, size=(40, 20)) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(noise_rgb(seed=5).resize(size), "JPEG", exif=exif.tobytes())


def test_exif_orientation_6_is_applied_so_width_and_height_swap():
    decoded = decode_image(_jpeg_with_orientation(6), IngestConfig(max_side=64))
    assert isinstance(decoded, Decoded)
    assert decoded.orig_size == (40, 20)
    assert decoded.image.size == (20, 40)
    assert "exif orientation 6 applied" in decoded.normalisation


def test_rotated_jpeg_is_stored_upright_rather_than_as_the_original():
    jpg = _jpeg_with_orientation(6)
    result, images = run([item("r.jpg", jpg)])
    (sample,) = result.samples
    assert (sample.width, sample.height, sample.orig_width, sample.orig_height) == (20, 40, 40, 20)
    stored = Image.open(io.BytesIO(images[sample.sample_id]))
    assert stored.size == (20, 40) and images[sample.sample_id] != jpg


def test_orientation_1_changes_nothing():
    jpg = _jpeg_with_orientation(1)
    result, images = run([item("r.jpg", jpg)])
    assert result.samples[0].normalisation == "" and images[result.samples[0].sample_id] == jpg


# --- bytes after a JPEG's end ----------------------------------------------------------------


def test_bytes_after_the_jpeg_end_are_stripped_stored_without_and_noted():
    jpg = encode(noise_rgb(seed=6), "JPEG")
    result, images = run([item("t.jpg", jpg + b"appended junk")])
    (sample,) = result.samples
    assert sample.sample_id == hashlib.sha256(jpg).hexdigest()  # the id of the stripped bytes
    assert images[sample.sample_id] == jpg
    (note,) = notes_of(sample, SampleNote.TRAILING_BYTES_STRIPPED)
    assert "13 bytes" in note and "t.jpg" in note


def test_files_differing_only_in_trailing_junk_are_one_image():
    jpg = encode(noise_rgb(seed=7), "JPEG")
    result, _ = run([item("a.jpg", jpg), item("b.jpg", jpg + b"\x00" * 9)])
    (sample,) = result.samples
    assert sample.source_uris == ["a.jpg", "b.jpg"]
    (note,) = notes_of(sample, SampleNote.TRAILING_BYTES_STRIPPED)
    assert "9 bytes" in note and "b.jpg" in note
    assert result.counts.duplicates == 1


def test_an_end_marker_inside_the_junk_is_not_taken_for_the_jpeg_end():
    jpg = encode(noise_rgb(seed=8), "JPEG")
    assert strip_jpeg_trailer(jpg + b"ab\xff\xd9cd\xff\xd9") == (jpg, 8)


def test_progressive_jpeg_with_an_exif_block_is_cut_at_its_real_end():
    exif = Image.Exif()
    exif[0x010E] = "a description"
    jpg = encode(noise_rgb(seed=9), "JPEG", progressive=True, exif=exif.tobytes())
    assert strip_jpeg_trailer(jpg) == (jpg, 0)
    assert strip_jpeg_trailer(jpg + b"zz") == (jpg, 2)


def test_a_cut_short_jpeg_is_left_whole_and_still_quarantined_as_truncated():
    jpg = encode(noise_rgb(seed=10), "JPEG")
    cut = jpg[: len(jpg) // 2]
    assert strip_jpeg_trailer(cut) == (cut, 0)
    result, _ = run([item("cut.jpg", cut)])
    assert [q.reason for q in result.quarantine] == ["truncated"]


def test_non_jpeg_bytes_are_never_cut():
    png = encode(noise_rgb(seed=11), "PNG")
    assert strip_jpeg_trailer(png + b"junk") == (png + b"junk", 0)


# --- schema and lineage ----------------------------------------------------------------------


def test_notes_and_conflicting_labels_reach_the_manifest_table():
    png = encode(noise_rgb(seed=12), "PNG")
    result, _ = run([item("f/a.png", png, "forest"), item("r/a.png", png, "river")])
    row = to_table(result.samples, SAMPLE_SCHEMA).to_pylist()[0]
    assert row["conflicting_labels"] == ["forest", "river"]
    assert row["notes"][0].startswith("label_conflict:")


def test_a_lineage_db_made_before_the_new_columns_gains_them_and_accepts_inserts(tmp_path):
    path = str(tmp_path / "old.duckdb")
    old_schema = pa.schema([f for f in SAMPLE_SCHEMA if f.name not in NEW_COLUMNS])
    con = duckdb.connect(path)
    con.execute(lineage._ddl("samples", old_schema))
    con.execute("INSERT INTO samples (sample_id, batch, run_id) VALUES ('old', 'b0', 'r0')")
    con.close()

    png = encode(noise_rgb(seed=13), "PNG")
    result, _ = run([item("f/a.png", png, "forest"), item("r/a.png", png, "river")])
    store = LineageStore(path)
    rows = to_table(result.samples, SAMPLE_SCHEMA)
    store.replace_partition("samples", rows, asset="rs_images", partition_key="b1", run_id="r1")

    got = store.query(
        "SELECT sample_id, run_id, label, conflicting_labels, notes FROM samples ORDER BY batch"
    ).to_pylist()
    assert got[0] == {
        "sample_id": "old",
        "run_id": "r0",
        "label": None,
        "conflicting_labels": None,
        "notes": None,
    }
    assert got[1]["run_id"] == "r1"  # inserted by name, not shifted by the added columns
    assert got[1]["conflicting_labels"] == ["forest", "river"]
    assert got[1]["notes"][0].startswith("label_conflict:")
