import json
import logging
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from rs_pipeline.core.config.data import PairsConfig
from rs_pipeline.core.pairs.rsrm import RecordProblem, import_rsrm
from rs_pipeline.core.pairs.stage import PairsReport, _imports, _Pairs
from rs_pipeline.core.records import sample_id_of
from rs_pipeline_tests.factories import encode, noise_rgb


def _image(folder, name="a.png", seed=5) -> tuple[bytes, str]:
    folder.mkdir(parents=True, exist_ok=True)
    data = encode(noise_rgb(seed=seed), "PNG")
    (folder / name).write_bytes(data)
    return data, sample_id_of(data)


def _run(path, image_root=None):
    counts, problems = Counter(), []
    pairs = list(import_rsrm((str(path),), image_root, counts, problems))
    return pairs, counts, problems


def test_malformed_jsonl_line_is_reported_and_the_good_lines_still_import(tmp_path):
    _, sid = _image(tmp_path)
    good = {"chosen": "c", "rejected": "r", "image_name": "a.png"}
    lines = [json.dumps(good), '{"chosen": "c", "rejected": ', "[1, 2]", json.dumps(good)]
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n")
    pairs, counts, problems = _run(tmp_path / "p.jsonl")
    assert [(p.sample_id, p.line) for p in pairs] == [(sid, 1), (sid, 4)]
    assert counts == Counter(read=2, malformed_json=1, not_an_object=1)
    assert [(p.line, p.reason) for p in problems] == [(2, "malformed_json"), (3, "not_an_object")]
    assert all(p.source == str(tmp_path / "p.jsonl") and p.detail for p in problems)


def test_every_skipped_record_is_listed_with_its_line_and_reason(tmp_path):
    _image(tmp_path)
    records = [
        {"chosen": "c", "rejected": "r", "image_name": "gone.png"},
        {"chosen": "c", "image_name": "a.png"},
        {"chosen": "c", "rejected": "r", "image_name": "../../etc/passwd"},
    ]
    (tmp_path / "p.json").write_text(json.dumps(records))
    _, counts, problems = _run(tmp_path / "p.json")
    assert [(p.line, p.reason) for p in problems] == [
        (1, "image_missing"),
        (2, "missing_fields"),
        (3, "image_outside_root"),
    ]
    assert sum(counts.values()) == len(records)


def test_prompt_is_the_question_when_there_is_no_question(tmp_path):
    _image(tmp_path)
    records = [
        {"prompt": "What is shown?", "chosen": "c", "rejected": "r", "image_name": "a.png"},
        {"question": "Q", "prompt": "P", "chosen": "c", "rejected": "r", "image_name": "a.png"},
    ]
    (tmp_path / "p.json").write_text(json.dumps(records))
    pairs, _, _ = _run(tmp_path / "p.json")
    assert [p.question for p in pairs] == ["What is shown?", "Q"]


def _chat(question, answer):
    return [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]


def test_chat_message_answers_import_as_the_assistant_text(tmp_path):
    _image(tmp_path)
    records = [
        {
            "chosen": _chat("Describe.", "a dense forest"),
            "rejected": _chat("Describe.", "a beach"),
            "image_name": "a.png",
        },
        {
            "prompt": [{"role": "user", "content": "Count the ships."}],
            "chosen": {"role": "assistant", "content": "three"},
            "rejected": [[{"role": "assistant", "content": "two"}], "four"],
            "image_name": "a.png",
        },
        {"chosen": [{"role": "user", "content": "hi"}], "rejected": "r", "image_name": "a.png"},
    ]
    (tmp_path / "p.json").write_text(json.dumps(records))
    pairs, counts, problems = _run(tmp_path / "p.json")
    assert [(p.question, p.chosen, p.rejected) for p in pairs] == [
        ("Describe.", "a dense forest", "a beach"),
        ("Count the ships.", "three", "two"),
        ("Count the ships.", "three", "four"),
    ]
    assert counts["bad_message"] == 1 and problems[0].line == 3


def test_parquet_text_json_and_image_bytes_variants_import(tmp_path):
    data, sid = _image(tmp_path / "imgs")
    text = json.dumps({"chosen": "c", "rejected": ["r1", "r2"]})
    rows = [
        {"text": text, "image": {"bytes": data, "path": "ignored.png"}},
        {"text": text, "image": {"bytes": None, "path": "a.png"}},
        {"text": "{not json", "image": {"bytes": data, "path": None}},
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    pairs, counts, problems = _run(tmp_path / "p.parquet", str(tmp_path / "imgs"))
    assert [(p.rejected, p.line) for p in pairs] == [("r1", 1), ("r2", 1), ("r1", 2), ("r2", 2)]
    assert {p.sample_id for p in pairs} == {sid}
    assert counts == Counter(read=2, malformed_text=1) and problems[0].line == 3


def test_parquet_raw_image_bytes_and_plain_columns_import(tmp_path):
    data, sid = _image(tmp_path)
    rows = [{"question": "Q", "chosen": "c", "rejected": "r", "image": data}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    pairs, _, _ = _run(tmp_path / "p.parquet")
    assert [(p.sample_id, p.question, p.chosen, p.rejected) for p in pairs] == [
        (sid, "Q", "c", "r")
    ]


def test_json_images_are_also_found_in_the_folder_named_after_the_file(tmp_path):
    _, sid = _image(tmp_path / "root" / "rsicd")
    (tmp_path / "rsicd.json").write_text(
        json.dumps([{"chosen": "c", "rejected": "r", "image_name": "a.png"}])
    )
    pairs, _, _ = _run(tmp_path / "rsicd.json", str(tmp_path / "root"))
    assert [p.sample_id for p in pairs] == [sid]


def test_single_json_object_file_is_one_record(tmp_path):
    _image(tmp_path)
    body = json.dumps({"chosen": "c", "rejected": "r", "image_name": "a.png"}, indent=2)
    (tmp_path / "p.json").write_text(body)
    pairs, counts, _ = _run(tmp_path / "p.json")
    assert len(pairs) == 1 and counts == Counter(read=1)


def test_unreadable_or_malformed_json_list_file_is_one_reported_problem(tmp_path):
    (tmp_path / "p.json").write_text('[{"chosen": "c"},\n oops]')
    counts, problems = Counter(), []
    paths = (str(tmp_path / "p.json"), str(tmp_path / "absent.jsonl"))
    assert list(import_rsrm(paths, None, counts, problems)) == []
    assert counts == Counter(malformed_json=1, unreadable_file=1)
    assert [(p.line, p.reason) for p in problems] == [(2, "malformed_json"), (0, "unreadable_file")]


def test_unattached_records_are_warned_about_and_kept_in_the_stage_report(tmp_path, caplog):
    _, sid = _image(tmp_path)
    _, other = _image(tmp_path, "b.png", seed=6)
    records = [
        {"chosen": "c", "rejected": ["r1", "r2"], "image_name": "b.png"},  # not in the batch
        {"chosen": "c", "rejected": "r", "image_name": "a.png"},
        {"chosen": "c", "rejected": "r", "image_name": "gone.png"},
    ]
    (tmp_path / "p.json").write_text(json.dumps(records))
    cfg = PairsConfig(import_files=(str(tmp_path / "p.json"),))
    out, rep = _Pairs("b1", {sid: "train"}), PairsReport("b1")
    with caplog.at_level(logging.WARNING, logger="rs_pipeline.core.pairs.stage"):
        _imports(cfg, out, rep)
    assert rep.imports == Counter(read=2, attached_pairs=1, image_not_in_batch=2, image_missing=1)
    path = str(tmp_path / "p.json")
    first, missing = sorted(rep.import_problems, key=lambda p: p.line)
    assert first == RecordProblem(path, 1, "image_not_in_batch", other)  # once, not per pair
    assert (missing.line, missing.reason) == (3, "image_missing")
    assert missing.detail.endswith(str(tmp_path / "gone.png"))
    assert "image_not_in_batch" in caplog.text and "image_missing" in caplog.text
