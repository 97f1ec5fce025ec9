"""The caption_candidates stage: progress in the run log while it captions."""

import re
from functools import partial

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.captions import stage
from rs_pipeline.core.captions.stage import run_captions
from rs_pipeline.core.config import load_config
from rs_pipeline.core.ingest.stage import run_ingest
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.progress import Progress
from rs_pipeline_tests.factories import write_config


def test_captioning_logs_images_done_of_the_batch_with_rate_and_eta(tmp_path, monkeypatch):
    source = {"kind": "synthrs", "name": "synthrs", "count": 10, "size": 64, "seed": 3}
    cfg = load_config(write_config(tmp_path, sources=[source], captions={"chunk_size": 4}))
    store, lineage = ArtifactStore(cfg.storage.root), LineageStore(cfg.storage.lineage_db)
    run_ingest(cfg, "b1", store, lineage, "r1")
    # A line at every step, not every 10 s: the test sees each count, with no waiting.
    monkeypatch.setattr(stage, "Progress", partial(Progress, every_s=0.0))
    lines: list[str] = []
    report = run_captions(cfg, "b1", store, lineage, "r1", log=lines.append)
    parsed = [
        re.fullmatch(r"b1: image x captioner (\d+)/(\d+), [\d.]+/s, ETA \S+", x) for x in lines
    ]
    assert all(parsed), lines
    done = [int(m.group(1)) for m in parsed]
    (total,) = {int(m.group(2)) for m in parsed}
    assert done == sorted(done) and done[-1] == total  # counts up to the end, and ends there
    assert total % report.images == 0 and total // report.images >= 1  # images x captioners
    assert len(lines) > total // report.images  # more than one line per captioner pass
