"""benchmarks/gpu.sh stays correct without a GPU: its CPU mode measures every figure at tiny
sizes, writes the raw numbers under --out, and takes the bf16 peak from the table or the env."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu

ROOT = Path(__file__).resolve().parents[1]
# Smaller still than --quick: one tiny CLIP, 4 JPEGs, one DataLoader worker, one step each.
SMALLEST = dataclasses.replace(
    gpu.TINY,
    clip_models=("rs-vit-tiny-64",),
    images=4,
    captions_per_image=2,
    score_batch=4,
    workers=1,
    train_batch=4,
    train_steps=1,
    qwen_batch=1,
    qwen_iters=1,
)


def test_peak_comes_from_the_table_by_device_name_or_the_env(monkeypatch):
    monkeypatch.delenv(gpu.PEAK_ENV, raising=False)
    assert gpu.peak_tflops("NVIDIA H100 PCIe") == 756.0  # the specific name before "H100"
    assert gpu.peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert gpu.peak_tflops("Some Future GPU") is None
    monkeypatch.setenv(gpu.PEAK_ENV, "123.5")
    assert gpu.peak_tflops("NVIDIA H100 80GB HBM3") == 123.5


def test_record_share_of_peak_is_flops_over_time_over_peak():
    r = gpu.Record("x", "pairs", items=100, seconds=2.0, flops_per_item=1e12, peak_tflops=100.0)
    assert r.per_s == 50 and r.tflops == 50 and r.fraction == 0.5
    assert dataclasses.replace(r, peak_tflops=None).fraction is None


@pytest.mark.slow
def test_cpu_mode_measures_every_figure_and_writes_json(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, "TINY", SMALLEST)
    monkeypatch.setenv(gpu.PEAK_ENV, "1.0")  # a peak, so the share is computed on CPU too
    monkeypatch.setattr(sys, "argv", ["gpu", "--quick", "--out", str(tmp_path)])
    gpu.main()
    raw = json.loads((tmp_path / "gpu.json").read_text())
    names = [r["name"] for r in raw["records"]]
    assert any(n.startswith("pair_scores clip_head rs-vit-tiny-64") for n in names)
    assert any("train_contrastive" in n for n in names)
    assert any("bare step" in n for n in names)
    assert any(n.startswith("Qwen2-VL reward forward") for n in names)
    for r in raw["records"]:
        assert r["per_s"] > 0, r
    computed = [r for r in raw["records"] if r["flops_per_item"] > 0]
    assert len(computed) == 4 and all(r["fraction"] > 0 for r in computed)
    assert "<!-- gpu:start -->" in (tmp_path / "RESULTS.md").read_text()


def test_gpu_sh_is_valid_bash_that_runs_the_module():
    script = ROOT / "benchmarks" / "gpu.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "-m benchmarks.gpu" in text and "--fetch-wheels" in text
