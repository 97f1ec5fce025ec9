"""The typed job an asset hands to `rs_pipeline.jobs.train`: what to train, on what, where.

The configuration travels whole (validated again on the other side), so a pod needs nothing
but the image; the artifact root and storage options are the non-secret ones, credentials
come from the environment (`AWS_*`), never from the job.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

JobKind = Literal["score_model", "clip_checkpoints", "vlm_checkpoints", "probe"]
JOB_KINDS: tuple[str, ...] = ("score_model", "clip_checkpoints", "vlm_checkpoints", "probe")
ProbeTrainer = Literal["score", "clip", "sft"]


@dataclass(frozen=True)
class ProbeSpec:
    """A tiny synthetic run of one trainer: its final weights, losses and step time in `out`."""

    trainer: ProbeTrainer
    out: str
    steps: int = 4
    batch_size: int = 8
    seed: int = 0
    snapshot_every: int = 0
    stop_at: int = 0  # stop (as a lost pod would) right after the snapshot of this step


@dataclass(frozen=True)
class TrainJob:
    """One torchrun job: a stage of the pipeline (one partition) or a probe."""

    kind: JobKind
    config: dict[str, Any] = field(default_factory=dict)  # PipelineConfig.model_dump(mode="json")
    partition_key: str = ""
    run_id: str = ""
    store_root: str = ""
    storage_options: dict[str, Any] = field(default_factory=dict)
    lineage_db: str = ""
    probe: ProbeSpec | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainJob:
        data = json.loads(text)
        if data.get("kind") not in JOB_KINDS:
            raise ValueError(f"job kind {data.get('kind')!r}: one of {', '.join(JOB_KINDS)}")
        probe = data.pop("probe", None)
        return cls(**data, probe=ProbeSpec(**probe) if probe else None)


def read_job(arg: str) -> TrainJob:
    """The job from a JSON file path, or inline JSON (what a pod's command carries)."""
    text = arg if arg.lstrip().startswith("{") else Path(arg).read_text()
    return TrainJob.from_json(text)
