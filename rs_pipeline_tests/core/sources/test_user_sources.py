import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from rs_pipeline.core.config import ConfigError, config_from_dict
from rs_pipeline.core.sources.imagefolder import ImageFolderSource
from rs_pipeline.core.sources.manifest import ManifestSource
from rs_pipeline_tests.factories import encode, noise_rgb

EXTS = (".jpg", ".png")


def make_folder(root, batch="b1"):
    for cls, n in (("forest", 2), ("river", 1)):
        (root / batch / cls).mkdir(parents=True)
        for i in range(n):
            (root / batch / cls / f"{i}.jpg").write_bytes(encode(noise_rgb(seed=i), "JPEG"))
    (root / batch / "forest" / "notes.txt").write_text("field notes")
    (root / batch / "stray.jpg").write_bytes(b"x")


def test_imagefolder_labels_by_folder_and_substitutes_batch(tmp_path):
    make_folder(tmp_path)
    src = ImageFolderSource("mine", str(tmp_path / "{batch}"), EXTS)
    items = list(src.iter_items("b1"))
    admitted = [(i.label, i.uri.rsplit("/", 1)[-1]) for i in items if i.problem is None]
    assert admitted == [("forest", "0.jpg"), ("forest", "1.jpg"), ("river", "0.jpg")]


def test_imagefolder_accounts_for_files_outside_the_layout(tmp_path):
    make_folder(tmp_path)
    items = list(ImageFolderSource("mine", str(tmp_path / "b1"), EXTS).iter_items("b1"))
    problems = sorted(i.problem[0] for i in items if i.problem)
    assert problems == ["not_in_layout", "unlisted_extension"]


def test_landing_completion_marker_is_not_an_input(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "b1" / "_SUCCESS").write_bytes(b"")
    (tmp_path / "b1" / "forest" / "_SUCCESS").write_bytes(b"")  # not the drop's marker
    items = list(ImageFolderSource("mine", str(tmp_path / "b1"), EXTS).iter_items("b1"))
    assert not any(i.uri.endswith("b1/_SUCCESS") for i in items)
    assert any(i.uri.endswith("forest/_SUCCESS") and i.problem for i in items)


def test_imagefolder_missing_folder_says_what_to_set(tmp_path):
    with pytest.raises(FileNotFoundError, match="sources\\[\\].path"):
        list(ImageFolderSource("mine", str(tmp_path / "nope"), EXTS).iter_items("b1"))


def write_manifest(tmp_path, fmt: str):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(encode(noise_rgb(seed=3), "PNG"))
    rows = [
        {
            "path": "img/a.png",
            "label": "lake",
            "captions": json.dumps(["a lake", "water"]),
            "gsd_m": 0.5,
            "sensor": "uav",
        },
        {"path": "img/missing.png", "label": None, "captions": None, "gsd_m": None, "sensor": None},
        {"path": "../outside.png", "label": None, "captions": None, "gsd_m": None, "sensor": None},
    ]
    path = tmp_path / f"manifest.{fmt}"
    if fmt == "csv":
        pacsv.write_csv(pa.Table.from_pylist(rows), path)
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_manifest_rows_become_items_with_captions_and_metadata(tmp_path, fmt):
    path = write_manifest(tmp_path, fmt)
    items = list(ManifestSource("m", str(path)).iter_items("b1"))
    first = items[0]
    assert first.label == "lake" and first.captions == ("a lake", "water")
    assert first.geo.gsd_m == 0.5 and first.geo.sensor == "uav"
    assert items[1].problem[0] == "unreadable"
    assert items[2].problem[0] == "path_outside_root" and items[2].data is None


def test_manifest_without_path_column_fails_naming_it(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"file": "a.png"}\n')
    with pytest.raises(ValueError, match="needs a `path` column"):
        list(ManifestSource("m", str(tmp_path / "m.jsonl")).iter_items("b1"))


def write_clip_csv(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(encode(noise_rgb(seed=5), "PNG"))
    path = tmp_path / "train.csv"
    path.write_text("filename,title,label\nimg/a.png,a harbour with boats,coast\n")
    return path


def test_manifest_columns_map_the_files_own_names_to_ours(tmp_path):
    path = write_clip_csv(tmp_path)
    cols = {"path": "filename", "captions": "title"}
    (item,) = ManifestSource("clip", str(path), columns=cols).iter_items("b1")
    assert item.problem is None and item.uri.endswith("img/a.png")
    assert item.captions == ("a harbour with boats",) and item.label == "coast"


def test_manifest_column_mapped_but_missing_fails_naming_it_and_the_files_columns(tmp_path):
    path = write_clip_csv(tmp_path)
    src = ManifestSource("clip", str(path), columns={"path": "file_name"})
    with pytest.raises(ValueError, match=r"\['file_name'\].*\['filename', 'title', 'label'\]"):
        list(src.iter_items("b1"))


def test_manifest_columns_config_rejects_unknown_fields_naming_the_allowed_ones():
    with pytest.raises(ConfigError, match="unknown manifest field.*'caption'.*allowed keys: path"):
        config_from_dict(
            {"sources": [{"kind": "manifest", "path": "m.csv", "columns": {"caption": "title"}}]}
        )
