"""The `clip_checkpoints` stage: fine-tune CLIP on one selection, once per seed, and evaluate.

Every selection gets the same optimisation steps and batch size (fairness), each seed its own
safetensors checkpoint with a JSON config naming the selection and its manifest digest. A seed
whose checkpoint already matches (same plan, same manifest) is reused; an interrupted seed
resumes from its last snapshot under `storage.work_dir`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.device import resolve_device
from rs_pipeline.core.evaluation.benchmarks import decontaminated_benchmarks
from rs_pipeline.core.evaluation.clip_eval import evaluate_clip
from rs_pipeline.core.evaluation.results import EvalResult, results_table
from rs_pipeline.core.ingest.images import load_images
from rs_pipeline.core.layout import CHECKPOINTS_ASSET, checkpoint_dir
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.names import ALL_SELECTION, parse_selection
from rs_pipeline.core.progress import Progress
from rs_pipeline.core.records import CHECKPOINT_SCHEMA
from rs_pipeline.core.selection.manifest import SelectionManifest, load_selection
from rs_pipeline.core.training import distributed
from rs_pipeline.core.training.contrastive import ContrastivePlan, train_contrastive
from rs_pipeline.core.training.snapshots import Snapshots


@dataclass
class SeedRun:
    """One seed's checkpoint and how it came about."""

    seed: int
    url: str
    final_loss: float
    reused: bool  # an identical checkpoint existed: nothing retrained


@dataclass
class CheckpointsReport:
    """What one selection's fine-tunes produced, and their evaluation."""

    selection: str
    digest: str
    train_pairs: int
    train_images: int
    steps: int
    runs: list[SeedRun] = field(default_factory=list)
    results: list[EvalResult] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)  # benchmark -> decontaminated images


def trains_clip(cfg: PipelineConfig, selection: str) -> bool:
    """Whether CLIP trains on `selection`: every curated one, `all@100` with include_all."""
    return selection != ALL_SELECTION or cfg.finetune.include_all


def plan_for(cfg: PipelineConfig, seed: int) -> ContrastivePlan:
    """The contrastive plan of one seed: identical for every selection but the seed."""
    f = cfg.finetune
    return ContrastivePlan(
        steps=f.steps,
        batch_size=f.batch_size,
        lr=f.lr,
        warmup_steps=f.warmup_steps,
        weight_decay=f.weight_decay,
        seed=seed,
        lock_text=f.lock_text,
    )


def _key(cfg: PipelineConfig, manifest: SelectionManifest, seed: int) -> str:
    payload = {
        "plan": asdict(plan_for(cfg, seed)),
        "digest": manifest.digest,
        "clip_model": cfg.finetune.clip_model,
        "clip_weights": cfg.finetune.clip_weights,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _pairs(store: ArtifactStore, manifest: SelectionManifest):
    wanted: dict[str, set[str]] = defaultdict(set)
    rows = manifest.table.select(["batch", "sample_id", "text"]).to_pylist()
    for r in rows:
        wanted[r["batch"]].add(r["sample_id"])
    images = {}
    for batch, ids in sorted(wanted.items()):
        images |= load_images(store, batch, ids)
    return [(images[r["sample_id"]], r["text"]) for r in rows], len(images)


def _train_seed(cfg: PipelineConfig, *, manifest, pairs, seed: int, store, device: str, log):
    """(model, preprocess_val, tokenizer, SeedRun) for one seed, trained or reused."""
    from rs_pipeline.core.models.clip import build_clip, load_clip_weights

    model, preprocess_train, preprocess_val, tokenizer = build_clip(cfg.finetune.clip_model, seed)
    folder, key = checkpoint_dir(manifest.name, seed), _key(cfg, manifest, seed)
    if store.exists(folder, "config.json"):
        meta = json.loads(store.fs.cat_file(store.path(folder, "config.json")))
        if meta.get("key") == key:
            with tempfile.TemporaryDirectory() as tmp:
                store.fs.get(store.path(folder, "model.safetensors"), f"{tmp}/m.safetensors")
                load_clip_weights(model, f"{tmp}/m.safetensors")
            run = SeedRun(seed, store.url(folder), meta["final_loss"], reused=True)
            return model, preprocess_val, tokenizer, run
    if cfg.finetune.clip_weights:
        load_clip_weights(model, cfg.finetune.clip_weights)
    snaps = Snapshots(
        Path(cfg.storage.work_dir) / CHECKPOINTS_ASSET / manifest.name / f"seed={seed}", key
    )
    losses = train_contrastive(
        model,
        preprocess_train,
        tokenizer,
        pairs,
        plan_for(cfg, seed),
        device=device,
        log=log,
        snapshots=snaps,
        snapshot_every=cfg.finetune.checkpoint_every,
    )
    meta = {
        "key": key,
        "selection": manifest.name,
        "manifest_digest": manifest.digest,
        "seed": seed,
        "clip_model": cfg.finetune.clip_model,
        "init_weights": cfg.finetune.clip_weights,
        "plan": asdict(plan_for(cfg, seed)),
        "train_pairs": len(manifest),
        "final_loss": losses[-1],
        "losses": losses,
    }
    if distributed.world().is_main:  # under torchrun every rank holds the same weights
        _write_checkpoint(store, folder, model, meta)
    snaps.clear()
    return model, preprocess_val, tokenizer, SeedRun(seed, store.url(folder), losses[-1], False)


def _write_checkpoint(store: ArtifactStore, folder: str, model, meta: dict) -> None:
    """safetensors weights + config.json naming the selection and its manifest digest."""
    from rs_pipeline.core.models.clip import save_clip_weights

    with tempfile.TemporaryDirectory() as tmp:
        save_clip_weights(model.cpu(), f"{tmp}/model.safetensors")
        store.fs.makedirs(store.path(folder), exist_ok=True)
        # Weights first, config last: a config.json is the marker of a complete checkpoint.
        store.fs.put_file(f"{tmp}/model.safetensors", store.path(folder, "model.safetensors"))
    store.fs.pipe_file(store.path(folder, "config.json"), json.dumps(meta, indent=2).encode())


def run_clip_checkpoints(
    cfg: PipelineConfig,
    selection: str,
    store: ArtifactStore,
    lineage: LineageStore,
    run_id: str,
    log: Callable[[str], None] | None = None,
) -> CheckpointsReport:
    """Fine-tune and evaluate one selection for every configured seed; lineage rows.

    Under torchrun every rank trains each seed; rank 0 alone writes, evaluates and records
    (the others may pass `lineage=None`)."""
    manifest = load_selection(store, selection)
    if len(manifest) < 2:
        raise ValueError(f"selection {selection!r} has {len(manifest)} pairs; training needs 2+")
    _, scorer, percent = parse_selection(selection)
    pairs, n_images = _pairs(store, manifest)
    benches, excluded = decontaminated_benchmarks(cfg, store, log=log)
    device = resolve_device(cfg.compute.device)
    rep = CheckpointsReport(
        selection=selection,
        digest=manifest.digest,
        train_pairs=len(pairs),
        train_images=n_images,
        steps=cfg.finetune.steps,
        excluded=excluded,
    )
    progress = Progress(len(cfg.finetune.seeds), log, what=f"{selection}: seeds")
    for seed in cfg.finetune.seeds:
        model, preprocess, tokenizer, run = _train_seed(
            cfg, manifest=manifest, pairs=pairs, seed=seed, store=store, device=device, log=log
        )
        rep.runs.append(run)
        if not distributed.world().is_main:
            continue  # rank 0 evaluates and records; the others only train
        for bench in benches:
            metrics = evaluate_clip(
                model,
                preprocess,
                tokenizer,
                bench,
                batch_size=cfg.evaluation.batch_size,
                device=device,
                log=log,
            )
            rep.results += [
                EvalResult(
                    selection=selection,
                    scorer=scorer,
                    percent=percent,
                    seed=seed,
                    benchmark=bench.name,
                    metric=m,
                    value=v,
                    n_images=len(bench.images),
                    excluded=excluded[bench.name],
                    checkpoint=run.url,
                )
                for m, v in metrics.items()
            ]
        progress.step()
    if distributed.world().is_main:
        _record(rep, manifest, store, lineage, run_id)
    return rep


def _record(rep: CheckpointsReport, manifest, store, lineage: LineageStore, run_id: str) -> None:
    """Eval results as Parquet beside the checkpoints; checkpoints + results into lineage."""
    table = results_table(rep.results)
    store.write_table(table, checkpoint_dir(rep.selection), "eval.parquet")
    rows = [
        {
            "selection": rep.selection,
            "seed": r.seed,
            "manifest_digest": rep.digest,
            "train_pairs": rep.train_pairs,
            "train_images": rep.train_images,
            "steps": rep.steps,
            "final_loss": r.final_loss,
            "url": r.url,
        }
        for r in rep.runs
    ]
    tag = {"asset": CHECKPOINTS_ASSET, "partition_key": rep.selection, "run_id": run_id}
    checkpoints = pa.Table.from_pylist(rows, schema=CHECKPOINT_SCHEMA)
    lineage.replace_partition("checkpoints", checkpoints, **tag)
    lineage.replace_partition("eval_results", table, **tag)
    if rep.selection == ALL_SELECTION:  # the identity selection's rows, so lineage can join them
        lineage.replace_partition("selections", manifest.table, **tag)
