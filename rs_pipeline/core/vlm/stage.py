"""The `vlm_checkpoints` stage: SFT of a Qwen2-VL-family model on one selection, per seed.

The training set is the selection's caption pairs plus the VQA pairs (chosen answers) of its
images, written as ShareGPT records (what LLaMA-Factory reads) beside the checkpoints. Every
selection trains for the same steps from the same seeded base; each checkpoint is evaluated on
the held-out VQA questions and on scene classification asked as a question.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
from PIL import Image

from rs_pipeline.core.answers import accuracy_by_type
from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.device import resolve_device
from rs_pipeline.core.evaluation.benchmarks import decontaminated_benchmarks
from rs_pipeline.core.evaluation.results import EvalResult, results_table
from rs_pipeline.core.ingest.images import load_image_bytes
from rs_pipeline.core.layout import (
    PAIRS_FILE,
    VLM_CHECKPOINTS_ASSET,
    pairs_dir,
    sft_dir,
    vlm_checkpoint_dir,
)
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.names import ALL_SELECTION, parse_selection
from rs_pipeline.core.progress import Progress
from rs_pipeline.core.records import VLM_CHECKPOINT_SCHEMA
from rs_pipeline.core.selection.manifest import SelectionManifest, load_selection
from rs_pipeline.core.training import distributed
from rs_pipeline.core.training.snapshots import Snapshots
from rs_pipeline.core.vlm.generate import greedy_answers
from rs_pipeline.core.vlm.questions import EvalQuestion, scene_questions, synthrs_vqa_questions
from rs_pipeline.core.vlm.sft import SFTPlan, apply_lora, freeze_vision, train_sft
from rs_pipeline.core.vlm.sharegpt import SFTExample, sft_examples, write_sharegpt
from rs_pipeline.core.vlm.weights import META_FILE, build_base, load_vlm, save_vlm, uses_lora


def trains_vlm(cfg: PipelineConfig, selection: str) -> bool:
    """Whether the VLM family trains on `selection` (`vlm.ratios`, and `all@100`)."""
    if not cfg.vlm.enabled:
        return False
    if selection == ALL_SELECTION:
        return cfg.vlm.include_all
    return parse_selection(selection)[2] in cfg.vlm.ratios


@dataclass
class VLMRun:
    """One seed's checkpoint and how it came about."""

    seed: int
    url: str
    final_loss: float
    reused: bool  # an identical checkpoint existed: nothing retrained
    adapter: bool = False  # LoRA adapters (True) or full weights


@dataclass
class VLMCheckpointsReport:
    """What one selection's VLM fine-tunes produced, and their evaluation."""

    selection: str
    digest: str
    train_examples: int
    train_images: int
    steps: int
    adapter: bool
    sft_url: str
    runs: list[VLMRun] = field(default_factory=list)
    results: list[EvalResult] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)


def sft_plan(cfg: PipelineConfig, seed: int) -> SFTPlan:
    """The SFT plan of one seed: identical for every selection but the seed."""
    v = cfg.vlm
    return SFTPlan(
        steps=v.steps,
        batch_size=v.batch_size,
        lr=v.lr,
        warmup_ratio=v.warmup_ratio,
        weight_decay=v.weight_decay,
        seed=seed,
    )


def eval_questions(
    cfg: PipelineConfig, store: ArtifactStore, log: Callable[[str], None] | None = None
) -> tuple[list[EvalQuestion], dict]:
    """Held-out SynthRS VQA plus scene classification on every (decontaminated) benchmark."""
    v = cfg.vlm
    questions = synthrs_vqa_questions(count=v.vqa_count, seed=v.vqa_seed)
    benches, excluded = decontaminated_benchmarks(cfg, store, log=log)
    for bench in benches:
        questions += scene_questions(bench)
    return questions, excluded


def _vqa_pairs(store: ArtifactStore, batches: list[str]) -> list[dict]:
    rows: list[dict] = []
    for batch in batches:
        if store.exists(pairs_dir(batch), PAIRS_FILE):
            rows += store.read_table(pairs_dir(batch), PAIRS_FILE).to_pylist()
    return rows


def selection_examples(
    store: ArtifactStore, cfg: PipelineConfig, manifest: SelectionManifest
) -> list[SFTExample]:
    """One selection's examples: its caption pairs, then the VQA answers of its images."""
    rows = manifest.table.to_pylist()
    return sft_examples(
        rows, _vqa_pairs(store, manifest.batches), vqa_per_image=cfg.vlm.vqa_per_image
    )


def example_images(
    store: ArtifactStore, examples: list[SFTExample]
) -> dict[str, tuple[str, bytes]]:
    """(format, encoded bytes) by sample id of every image `examples` ask about."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for ex in examples:
        wanted[ex.batch].add(ex.sample_id)
    images: dict[str, tuple[str, bytes]] = {}
    for batch, ids in sorted(wanted.items()):
        images |= load_image_bytes(store, batch, ids)
    return images


def _training_set(store: ArtifactStore, cfg: PipelineConfig, manifest: SelectionManifest):
    """(examples, encoded images by sample id, URL of the ShareGPT set) of one selection."""
    examples = selection_examples(store, cfg, manifest)
    images = example_images(store, examples)
    if not distributed.world().is_main:  # rank 0 writes it; the others only train
        return examples, images, store.url(sft_dir(manifest.name))
    url = write_sharegpt(store, sft_dir(manifest.name), examples, images)
    return examples, images, url


def vqa_triples(
    store: ArtifactStore, cfg: PipelineConfig, manifest: SelectionManifest
) -> list[tuple[Image.Image, str, str]]:
    """(image, question, reference answer) of the selection's VQA examples (its RL prompts)."""
    examples = [ex for ex in selection_examples(store, cfg, manifest) if ex.kind == "vqa"]
    return _triples(examples, _decoded(example_images(store, examples)))


def _key(cfg: PipelineConfig, manifest: SelectionManifest, seed: int) -> str:
    payload = {
        "plan": asdict(sft_plan(cfg, seed)),
        "digest": manifest.digest,
        "model": cfg.vlm.model,
        "lora": [uses_lora(cfg.vlm.model, cfg.vlm.lora), cfg.vlm.lora_rank, cfg.vlm.lora_alpha],
        "vqa_per_image": cfg.vlm.vqa_per_image,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def load_checkpoint(store: ArtifactStore, folder: str, device: str):
    """(model, processor, meta) of a stored VLM checkpoint folder."""
    with tempfile.TemporaryDirectory() as tmp:
        store.fs.get(store.path(folder) + "/", tmp + "/", recursive=True)
        model, processor = load_vlm(tmp, device=device)
        meta = json.loads(Path(tmp, META_FILE).read_text())
    return model, processor, meta


def store_checkpoint(store: ArtifactStore, folder: str, *, model, processor, meta: dict) -> None:
    """save_vlm into the artifact store's `folder`, its marker (rs_vlm.json) written last."""
    with tempfile.TemporaryDirectory() as tmp:
        save_vlm(model, processor, tmp, meta=meta)
        store.fs.makedirs(store.path(folder), exist_ok=True)
        names = sorted(p.name for p in Path(tmp).iterdir() if p.name != META_FILE)
        for name in names + [META_FILE]:  # the marker last: a crash leaves no complete-looking one
            store.fs.put_file(str(Path(tmp, name)), store.path(folder, name))


def _train_seed(cfg: PipelineConfig, *, manifest, triples, seed: int, store, device, log):
    """(model, processor, VLMRun) for one seed, trained or reused."""
    folder, key = vlm_checkpoint_dir(manifest.name, seed), _key(cfg, manifest, seed)
    if store.exists(folder, META_FILE):
        meta = json.loads(store.fs.cat_file(store.path(folder, META_FILE)))
        if meta.get("key") == key:
            model, processor, _ = load_checkpoint(store, folder, device)
            run = VLMRun(
                seed, store.url(folder), meta["final_loss"], reused=True, adapter=meta["adapter"]
            )
            return model, processor, run
    model, processor = build_base(cfg.vlm.model, seed=seed, device=device)
    adapter = uses_lora(cfg.vlm.model, cfg.vlm.lora)
    if adapter:
        model = apply_lora(model, rank=cfg.vlm.lora_rank, alpha=cfg.vlm.lora_alpha, seed=seed)
    else:
        freeze_vision(model)  # the paper's recipe: the vision tower stays as pretrained
    work = Path(cfg.storage.work_dir) / VLM_CHECKPOINTS_ASSET / manifest.name / f"seed={seed}"
    snaps = Snapshots(work, key)
    losses = train_sft(
        model,
        processor,
        triples,
        sft_plan(cfg, seed),
        device=device,
        log=log,
        snapshots=snaps,
        snapshot_every=cfg.vlm.checkpoint_every,
    )
    meta = {
        "key": key,
        "selection": manifest.name,
        "manifest_digest": manifest.digest,
        "seed": seed,
        "base_model": cfg.vlm.model,
        "adapter": adapter,
        "plan": asdict(sft_plan(cfg, seed)),
        "train_examples": len(triples),
        "final_loss": losses[-1],
        "losses": losses,
    }
    if distributed.world().is_main:  # under torchrun every rank holds the same weights
        store_checkpoint(store, folder, model=model, processor=processor, meta=meta)
    snaps.clear()
    run = VLMRun(seed, store.url(folder), losses[-1], reused=False, adapter=adapter)
    return model, processor, run


def _decoded(images: dict[str, tuple[str, bytes]]) -> dict[str, Image.Image]:
    return {sid: Image.open(io.BytesIO(data)).convert("RGB") for sid, (_, data) in images.items()}


def _triples(examples: list[SFTExample], images: dict[str, Image.Image]):
    return [(images[ex.sample_id], ex.question, ex.answer) for ex in examples]


def evaluate_vlm(cfg, *, model, processor, questions, selection, seed, url, excluded, device):
    """EvalResult rows `vqa_<qtype>` / `vqa_all` per benchmark for one checkpoint."""
    replies = greedy_answers(
        model,
        processor,
        questions,
        max_new_tokens=cfg.vlm.max_new_tokens,
        batch_size=cfg.vlm.eval_batch_size,
        device=device,
    )
    _, scorer, percent = parse_selection(selection)
    by_bench: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        by_bench[q.benchmark].append(i)
    out = []
    for bench, idx in sorted(by_bench.items()):
        qs = [questions[i] for i in idx]
        for metric, value in accuracy_by_type(qs, [replies[i] for i in idx]).items():
            out.append(
                EvalResult(
                    selection=selection,
                    scorer=scorer,
                    percent=percent,
                    seed=seed,
                    benchmark=bench,
                    metric=metric,
                    value=value,
                    n_images=len({q.sample_id for q in qs}),
                    excluded=excluded.get(bench, 0),
                    checkpoint=url,
                )
            )
    return out


def run_vlm_checkpoints(
    cfg: PipelineConfig,
    selection: str,
    store: ArtifactStore,
    lineage: LineageStore,
    run_id: str,
    log: Callable[[str], None] | None = None,
) -> VLMCheckpointsReport:
    """Fine-tune and evaluate the VLM on one selection for every `vlm.seeds`; lineage rows.

    Under torchrun every rank trains each seed; rank 0 alone writes, evaluates and records
    (the others may pass `lineage=None`)."""
    if not trains_vlm(cfg, selection):
        raise ValueError(
            f"the VLM does not train on {selection!r}: set vlm.enabled and list its percent in "
            f"vlm.ratios (now {list(cfg.vlm.ratios)}; all@100 needs vlm.include_all)"
        )
    manifest = load_selection(store, selection)
    examples, encoded, sft_url = _training_set(store, cfg, manifest)
    if not examples:
        raise ValueError(f"selection {selection!r} yields no VLM training examples")
    triples = _triples(examples, _decoded(encoded))
    questions, excluded = eval_questions(cfg, store, log)
    device = resolve_device(cfg.compute.device)
    rep = VLMCheckpointsReport(
        selection=selection,
        digest=manifest.digest,
        train_examples=len(examples),
        train_images=len(encoded),
        steps=cfg.vlm.steps,
        adapter=uses_lora(cfg.vlm.model, cfg.vlm.lora),
        sft_url=sft_url,
        excluded=excluded,
    )
    progress = Progress(len(cfg.vlm.seeds), log, what=f"{selection}: VLM seeds")
    for seed in cfg.vlm.seeds:
        model, processor, run = _train_seed(
            cfg,
            manifest=manifest,
            triples=triples,
            seed=seed,
            store=store,
            device=device,
            log=log,
        )
        rep.runs.append(run)
        if not distributed.world().is_main:
            continue  # rank 0 evaluates and records; the others only train
        rep.results += evaluate_vlm(
            cfg,
            model=model,
            processor=processor,
            questions=questions,
            selection=selection,
            seed=seed,
            url=run.url,
            excluded=excluded,
            device=device,
        )
        progress.step()
    if not distributed.world().is_main:
        return rep
    summary = {
        "selection": rep.selection,
        "manifest_digest": rep.digest,
        "base_model": cfg.vlm.model,
        "train_examples": rep.train_examples,
        "train_images": rep.train_images,
        "steps": rep.steps,
    }
    record_vlm_checkpoints(
        store,
        lineage,
        asset=VLM_CHECKPOINTS_ASSET,
        folder=vlm_checkpoint_dir(selection),
        summary=summary,
        runs=rep.runs,
        results=rep.results,
        run_id=run_id,
    )
    return rep


def record_vlm_checkpoints(
    store: ArtifactStore,
    lineage: LineageStore,
    *,
    asset: str,
    folder: str,
    summary: dict,
    runs: list,
    results: list[EvalResult],
    run_id: str,
) -> None:
    """One selection's VLM checkpoints (SFT or RL) into lineage, a row per seed, and their
    evaluation as Parquet in `folder` and lineage rows. `summary`: the VLM_CHECKPOINT_SCHEMA
    fields shared by every seed (selection, manifest_digest, base_model, train_examples,
    train_images, steps); each run brings seed, adapter, final_loss and url."""
    table = results_table(results)
    store.write_table(table, folder, "eval.parquet")
    rows = [
        summary | {"seed": r.seed, "adapter": r.adapter, "final_loss": r.final_loss, "url": r.url}
        for r in runs
    ]
    tag = {"asset": asset, "partition_key": summary["selection"], "run_id": run_id}
    checkpoints = pa.Table.from_pylist(rows, schema=VLM_CHECKPOINT_SCHEMA)
    lineage.replace_partition("vlm_checkpoints", checkpoints, **tag)
    lineage.replace_partition("eval_results", table, **tag)
