import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from rs_pipeline.core.pairs.rsrm import import_rsrm
from rs_pipeline.core.records import sample_id_of
from rs_pipeline_tests.factories import encode, noise_rgb


def images(tmp_path):
    (tmp_path / "imgs").mkdir()
    data = encode(noise_rgb(seed=5), "PNG")
    (tmp_path / "imgs" / "a.png").write_bytes(data)
    return sample_id_of(data)


def test_rsrm_json_with_string_and_list_rejected(tmp_path):
    sid = images(tmp_path)
    records = [
        {"question": "Describe it.", "chosen": "good", "rejected": "bad", "image_name": "a.png"},
        {"chosen": "good", "rejected": ["worse", "worst"], "image_path": "a.png"},
        {"chosen": "x", "rejected": "y", "image_name": "missing.png"},
        {"chosen": "x", "image_name": "a.png"},
        {"chosen": "x", "rejected": "y", "image_name": "../../etc/passwd"},
    ]
    (tmp_path / "imgs" / "prefs.json").write_text(json.dumps(records))
    counts = Counter()
    pairs = list(import_rsrm((str(tmp_path / "imgs" / "prefs.json"),), None, counts))
    assert [(p.question, p.chosen, p.rejected) for p in pairs] == [
        ("Describe it.", "good", "bad"),
        (None, "good", "worse"),
        (None, "good", "worst"),
    ]
    assert {p.sample_id for p in pairs} == {sid}
    assert counts == Counter(read=2, image_missing=1, missing_fields=1, image_outside_root=1)


def test_rsrm_parquet_with_list_rejected_and_image_root(tmp_path):
    sid = images(tmp_path)
    table = pa.Table.from_pylist(
        [{"chosen": "c", "rejected": ["r1", "r2"], "image_name": "a.png", "question": None}]
    )
    pq.write_table(table, tmp_path / "prefs.parquet")
    counts = Counter()
    pairs = list(import_rsrm((str(tmp_path / "prefs.parquet"),), str(tmp_path / "imgs"), counts))
    assert [p.rejected for p in pairs] == ["r1", "r2"] and pairs[0].sample_id == sid
