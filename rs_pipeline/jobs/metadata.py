"""What a training asset's materialization says, built once for both launch paths.

In process the asset turns an `Outcome` into a `dg.MaterializeResult`; under torchrun rank 0
reports the same `Outcome` through Dagster Pipes, so the UI shows the same keys either way.
Values are plain JSON; `kind` is the Pipes metadata type ("json", "path", or inferred).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The score_model asset check (defs/scoring/assets.py MODEL_CHECK; a test keeps them equal).
SCORE_MODEL_CHECK = "beats_threshold_and_clipscore"
INFER = "__infer__"


@dataclass(frozen=True)
class Meta:
    """One metadata entry."""

    value: Any
    kind: str = INFER


@dataclass(frozen=True)
class CheckOutcome:
    """One asset check's result."""

    name: str
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    severity: str = "WARN"


@dataclass(frozen=True)
class Outcome:
    """A materialization: metadata, the data version and the asset checks' results."""

    metadata: dict[str, Meta]
    data_version: str | None = None
    checks: tuple[CheckOutcome, ...] = ()


def score_model_outcome(rep, min_val_accuracy: float) -> Outcome:
    """score_model's materialization from its ScoreModelReport."""
    required = rep.required_accuracy(min_val_accuracy)
    metadata = {
        "backend": Meta(rep.backend),
        "val_pairwise_accuracy": Meta(rep.val_accuracy),
        "clipscore_val_pairwise_accuracy": Meta(rep.clipscore_val_accuracy),
        "train_pairs": Meta(rep.train_pairs),
        "val_pairs": Meta(rep.val_pairs),
        "batches": Meta(rep.batches),
        "weights_sha256": Meta(rep.weights_sha256),
        "model": Meta(rep.url, "path"),
    }
    check = CheckOutcome(
        SCORE_MODEL_CHECK,
        passed=rep.val_accuracy >= required,
        metadata={"val_accuracy": rep.val_accuracy, "required": required},
    )
    return Outcome(metadata, rep.weights_sha256[:16], (check,))


def _seeds(rep, figure: str = "final_loss") -> dict[str, Meta]:
    """Per-seed entries every checkpoint asset shows: which seeds, which reused, `figure`."""
    return {
        "seeds": Meta([r.seed for r in rep.runs]),
        "reused_seeds": Meta([r.seed for r in rep.runs if r.reused]),
        figure: Meta({str(r.seed): getattr(r, figure) for r in rep.runs}, "json"),
        "checkpoints": Meta([r.url for r in rep.runs], "json"),
    }


def _mean(results, metric: str) -> float | None:
    """Mean of `metric` over a report's result rows (seeds x benchmarks); None without any."""
    values = [r.value for r in results if r.metric == metric]
    return sum(values) / len(values) if values else None


def clip_checkpoints_outcome(rep) -> Outcome:
    """clip_checkpoints' materialization from its CheckpointsReport."""
    metadata = {
        "train_pairs": Meta(rep.train_pairs),
        "train_images": Meta(rep.train_images),
        "steps": Meta(rep.steps),
        "mean_top1": Meta(_mean(rep.results, "top1")),
        "excluded_eval_images": Meta(rep.excluded, "json"),
        "manifest_digest": Meta(rep.digest),
    } | _seeds(rep)
    return Outcome(metadata, rep.digest[:16])


def vlm_checkpoints_outcome(rep) -> Outcome:
    """vlm_checkpoints' materialization from its VLMCheckpointsReport."""
    metadata = {
        "train_examples": Meta(rep.train_examples),
        "train_images": Meta(rep.train_images),
        "steps": Meta(rep.steps),
        "adapter": Meta(rep.adapter),
        "mean_vqa_all": Meta(_mean(rep.results, "vqa_all")),
        "sharegpt": Meta(rep.sft_url, "path"),
        "manifest_digest": Meta(rep.digest),
    } | _seeds(rep)
    return Outcome(metadata, rep.digest[:16])


def vlm_rl_checkpoints_outcome(rep) -> Outcome:
    """vlm_rl_checkpoints' materialization from its RL report (GRPO runs per seed)."""
    metadata = {
        "results_as": Meta(rep.name),
        "prompts": Meta(rep.prompts),
        "prompt_images": Meta(rep.images),
        "steps": Meta(rep.steps),
        "scorer_version": Meta(rep.scorer_version),
        "scorer_url": Meta(rep.scorer_url or "in-process"),
        "mean_vqa_all": Meta(_mean(rep.results, "vqa_all")),
        "sft_checkpoints": Meta([r.sft_url for r in rep.runs], "json"),
    } | _seeds(rep, "final_reward")
    return Outcome(metadata, rep.digest[:16])


def probe_outcome(record: dict) -> Outcome:
    """A probe run's materialization: its result record."""
    return Outcome({k: Meta(v, "json" if isinstance(v, list | dict) else INFER)
                    for k, v in record.items()})  # fmt: skip


def _pipes_metadata(metadata: dict[str, Meta]) -> dict[str, dict]:
    return {k: {"raw_value": m.value, "type": m.kind} for k, m in metadata.items()}


def report_to_pipes(pipes, outcome: Outcome) -> None:
    """Send `outcome` back through an open Dagster Pipes context (rank 0)."""
    pipes.report_asset_materialization(
        metadata=_pipes_metadata(outcome.metadata), data_version=outcome.data_version
    )
    for check in outcome.checks:
        pipes.report_asset_check(
            check_name=check.name,
            passed=check.passed,
            severity=check.severity,
            metadata=check.metadata,
        )
