"""ShareGPT SFT sets: which examples a selection yields, and the folder LLaMA-Factory reads."""

from __future__ import annotations

import json

import pytest

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.prompts import CAPTION_PROMPT
from rs_pipeline.core.vlm.sharegpt import (
    DATASET_NAME,
    SFTExample,
    sft_examples,
    sharegpt_record,
    write_sharegpt,
)
from rs_pipeline_tests.factories import encode, noise_rgb


def _sel(sid: str, text: str, batch: str = "b1") -> dict:
    return {"batch": batch, "sample_id": sid, "caption_id": f"{sid}-c", "text": text}


def _pair(sid: str, kind: str, question: str, chosen: str, batch: str = "b1") -> dict:
    return {
        "pair_id": f"{sid}-{question}-{chosen}",
        "batch": batch,
        "sample_id": sid,
        "kind": kind,
        "question": question,
        "chosen": chosen,
        "rejected": "wrong",
    }


SELECTION = [_sel("s2", "two ships in a harbor"), _sel("s1", "a green park")]
PAIRS = [
    _pair("s1", "vqa_closed", "Is there a park?", "yes"),
    _pair("s1", "vqa_open", "What colour is the park?", "green"),
    _pair("s1", "vqa_closed", "Is there a park?", "yes"),  # duplicate question
    _pair("s1", "vqa_open", "How many trees?", "4"),
    _pair("s2", "vqa_open", "How many ships?", "2"),
    _pair("s2", "caption", CAPTION_PROMPT, "a better caption"),  # caption pairs are not VQA
    _pair("s2", "imported", "Any boats?", "yes"),
    _pair("s3", "vqa_open", "How many roads?", "3"),  # an image the selection dropped
    _pair("s1", "vqa_open", "How many roads?", "1", batch="b2"),  # same id, other batch
]


def test_captions_then_vqa_of_selected_images_only_in_sorted_order():
    got = sft_examples(SELECTION, PAIRS, vqa_per_image=10)
    assert got == [
        SFTExample("s1", "b1", "caption", CAPTION_PROMPT, "a green park"),
        SFTExample("s2", "b1", "caption", CAPTION_PROMPT, "two ships in a harbor"),
        SFTExample("s1", "b1", "vqa", "How many trees?", "4"),
        SFTExample("s1", "b1", "vqa", "Is there a park?", "yes"),
        SFTExample("s1", "b1", "vqa", "What colour is the park?", "green"),
        SFTExample("s2", "b1", "vqa", "How many ships?", "2"),
    ]


def test_vqa_is_capped_per_image_in_question_order():
    got = sft_examples(SELECTION, PAIRS, vqa_per_image=2)
    s1 = [e.question for e in got if e.kind == "vqa" and e.sample_id == "s1"]
    assert s1 == ["How many trees?", "Is there a park?"]
    assert [e.kind for e in sft_examples(SELECTION, PAIRS, vqa_per_image=0)] == ["caption"] * 2


def test_duplicate_questions_keep_one_answer_whatever_the_input_order():
    pairs = [
        _pair("s1", "vqa_open", "What is it?", "park"),
        _pair("s1", "vqa_open", "What is it?", "a park"),
    ]
    one = sft_examples(SELECTION, pairs, vqa_per_image=4)
    other = sft_examples(SELECTION[::-1], pairs[::-1], vqa_per_image=4)
    assert one == other
    assert [(e.question, e.answer) for e in one if e.kind == "vqa"] == [("What is it?", "a park")]


def test_record_is_llama_factory_sharegpt():
    example = SFTExample("s1", "b1", "vqa", "How many trees?", "4")
    assert sharegpt_record(example, "images/s1.png") == {
        "messages": [
            {"role": "user", "content": "<image>How many trees?"},
            {"role": "assistant", "content": "4"},
        ],
        "images": ["images/s1.png"],
    }


@pytest.fixture
def written(tmp_path):
    store = ArtifactStore(str(tmp_path / "root"))
    examples = sft_examples(SELECTION, PAIRS, vqa_per_image=4)
    images = {
        "s1": ("JPEG", encode(noise_rgb(32, seed=1), "JPEG")),
        "s2": ("WEBP", encode(noise_rgb(32, seed=2), "PNG")),  # re-encoded: stored as png
    }
    url = write_sharegpt(store, "sft/v1@60", examples, images)
    return store, examples, images, url, tmp_path / "root" / "sft" / "v1@60"


def test_images_are_written_once_and_referenced_relative_to_data_json(written):
    store, examples, images, url, folder = written
    assert url == store.url("sft/v1@60", "data.json")
    assert sorted(p.name for p in (folder / "images").iterdir()) == ["s1.jpg", "s2.png"]
    assert (folder / "images" / "s1.jpg").read_bytes() == images["s1"][1]
    records = json.loads((folder / "data.json").read_text())
    assert len(records) == len(examples)
    assert records[0] == sharegpt_record(examples[0], "images/s1.jpg")
    for record, example in zip(records, examples, strict=True):
        (image,) = record["images"]
        assert not image.startswith("/") and (folder / image).is_file()
        assert (
            image == f"images/{example.sample_id}.{'jpg' if example.sample_id == 's1' else 'png'}"
        )


def test_dataset_info_describes_the_sharegpt_file(written):
    *_, folder = written
    assert json.loads((folder / "dataset_info.json").read_text()) == {
        DATASET_NAME: {
            "file_name": "data.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
            },
        }
    }


def test_a_missing_image_fails_before_anything_is_written(tmp_path):
    store = ArtifactStore(str(tmp_path))
    examples = sft_examples(SELECTION, [], vqa_per_image=0)
    with pytest.raises(FileNotFoundError, match="re-materialize rs_images"):
        write_sharegpt(store, "sft", examples, {"s1": ("PNG", b"x")})
    assert not (tmp_path / "sft").exists()
