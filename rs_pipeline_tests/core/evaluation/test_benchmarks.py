"""Benchmarks by path: ImageFolder classification, caption-file retrieval, SynthRS held-out."""

import hashlib
import json

import pytest
import torch

from rs_pipeline.core.config import BenchmarkConfig
from rs_pipeline.core.evaluation.benchmarks import load_benchmark
from rs_pipeline.core.evaluation.clip_eval import evaluate_clip
from rs_pipeline.core.models.clip import build_clip
from rs_pipeline_tests.factories import encode, noise_rgb


@pytest.fixture
def imagefolder(tmp_path):
    for c, cls in enumerate(["river_lake", "forest", "parking"]):
        (tmp_path / cls).mkdir()
        for i in range(3):
            (tmp_path / cls / f"{i}.png").write_bytes(encode(noise_rgb(32, seed=10 * c + i), "PNG"))
    (tmp_path / "README.txt").write_text("not an image")
    return tmp_path


def test_imagefolder_classes_come_from_folders_with_readable_prompts(imagefolder):
    names = {"river_lake": "a river or a lake"}
    cfg = BenchmarkConfig(
        name="mine", kind="classification", path=str(imagefolder), class_names=names
    )
    bench = load_benchmark(cfg)
    assert bench.classes == ["forest", "parking", "river_lake"] and len(bench.images) == 9
    assert "a satellite photo of a river or a lake." in bench.prompts[2]
    assert "a satellite image of parking" in bench.prompts[1]
    data = (imagefolder / "forest" / "0.png").read_bytes()
    assert bench.sample_ids[0] == hashlib.sha256(data).hexdigest()  # the id ingest gives it


def test_decontamination_drops_trained_images_and_counts_them(imagefolder):
    bench = load_benchmark(BenchmarkConfig(name="m", kind="classification", path=str(imagefolder)))
    clean, excluded = bench.without(set(bench.sample_ids[:4]))
    assert excluded == 4 and len(clean.images) == len(clean.labels) == 5
    assert clean.labels == bench.labels[4:]


def test_caption_file_retrieval_keeps_every_caption_of_an_image(tmp_path):
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(4):
        (tmp_path / "img" / f"{i}.png").write_bytes(encode(noise_rgb(32, seed=i), "PNG"))
        rows.append({"image": f"img/{i}.png", "captions": [f"caption {i} a", f"caption {i} b"]})
    path = tmp_path / "caps.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    bench = load_benchmark(BenchmarkConfig(name="caps", kind="retrieval", path=str(path)))
    assert len(bench.images) == 4 and len(bench.texts) == 8
    assert bench.text_to_image == [0, 0, 1, 1, 2, 2, 3, 3]
    clean, excluded = bench.without({bench.sample_ids[1]})
    assert excluded == 1 and clean.text_to_image == [0, 0, 1, 1, 2, 2]
    assert clean.texts[2] == "caption 2 a"


def test_caption_file_without_a_caption_column_says_which_columns_it_needs(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("image,label\na.png,x\n")
    with pytest.raises(ValueError, match="caption column"):
        load_benchmark(BenchmarkConfig(name="bad", kind="retrieval", path=str(path)))


def test_synthrs_heldout_is_deterministic_and_serves_both_tasks():
    cfg = BenchmarkConfig(name="s", kind="synthrs", count=14, seed=5)
    a, b = load_benchmark(cfg), load_benchmark(cfg)
    assert a.sample_ids == b.sample_ids and a.texts == b.texts
    assert a.classification and a.retrieval and len(a.texts) == 2 * len(a.images)
    assert sorted(set(a.labels)) == list(range(len(a.classes)))


def test_clip_evaluation_reports_every_metric_in_range():
    model, _, preprocess, tokenizer = build_clip("rs-resnet-tiny-64", seed=0)
    bench = load_benchmark(BenchmarkConfig(name="s", kind="synthrs", count=14, seed=5))
    metrics = evaluate_clip(model, preprocess, tokenizer, bench, batch_size=8)
    assert set(metrics) >= {"top1", "top5", "t2i_R@1", "i2t_R@10", "mean_recall"}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert metrics["top5"] >= metrics["top1"]
    torch.manual_seed(0)  # the evaluation is deterministic: same model, same numbers
    assert evaluate_clip(model, preprocess, tokenizer, bench, batch_size=5) == pytest.approx(
        metrics
    )


def test_loading_and_evaluating_a_benchmark_log_progress_to_its_total():
    lines: list[str] = []
    bench = load_benchmark(
        BenchmarkConfig(name="s", kind="synthrs", count=14, seed=5), log=lines.append
    )
    assert lines[-1].startswith("s: images loaded 14/14, ")
    model, _, preprocess, tokenizer = build_clip("rs-resnet-tiny-64", seed=0)
    evaluate_clip(model, preprocess, tokenizer, bench, batch_size=8, log=lines.append)
    encoded = len(bench.images) + sum(len(p) for p in bench.prompts) + len(bench.texts)
    assert lines[-1].startswith(f"s: encoded images + texts {encoded}/{encoded}, ")
    assert "/s, ETA " in lines[-1]
