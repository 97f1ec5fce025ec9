"""The `vlm_rl_checkpoints` stage: GRPO from each SFT checkpoint of one selection, per seed.

The prompts are the selection's VQA examples (the question, its chosen answer as the reference
the scorer judges against); the reward is the paper's: a format gate, then the scorer's margin
over the reference (`core/rewards`). The scorer is the one that ranks best-of-N answers, loaded
in-process or called at `serving.url`. Each RL checkpoint is evaluated on the SFT checkpoints'
questions, its rows named `<selection>+rl`, so the report shows SFT and SFT+RL side by side.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.device import resolve_device
from rs_pipeline.core.evaluation.results import EvalResult
from rs_pipeline.core.layout import VLM_RL_ASSET, vlm_checkpoint_dir, vlm_rl_dir
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.names import rl_selection
from rs_pipeline.core.rewards.trl import ScorerReward
from rs_pipeline.core.scoring.apply import scorer_for
from rs_pipeline.core.scoring.versions import current_version, version_named
from rs_pipeline.core.selection.manifest import SelectionManifest, load_selection
from rs_pipeline.core.vlm.rl import GRPOPlan, train_grpo
from rs_pipeline.core.vlm.stage import (
    eval_questions,
    evaluate_vlm,
    load_checkpoint,
    record_vlm_checkpoints,
    store_checkpoint,
    trains_vlm,
    vqa_triples,
)
from rs_pipeline.core.vlm.weights import META_FILE


def runs_rl(cfg: PipelineConfig, selection: str) -> bool:
    """Whether GRPO runs on `selection`: every selection the VLM trains on, with vlm.rl on."""
    return cfg.vlm.rl.enabled and trains_vlm(cfg, selection)


@dataclass
class RLRun:
    """One seed's RL checkpoint and the SFT checkpoint it started from."""

    seed: int
    url: str
    sft_url: str
    adapter: bool  # LoRA adapters (as the SFT checkpoint) or full weights
    final_reward: float | None  # mean reward of the last step's rollouts
    final_loss: float | None
    reused: bool  # an identical RL checkpoint existed: nothing retrained


@dataclass
class VLMRLReport:
    """What one selection's GRPO runs produced, and their evaluation."""

    selection: str
    name: str  # `<selection>+rl`: the selection its VQA rows carry
    digest: str
    prompts: int
    images: int
    steps: int
    scorer_version: str
    scorer_url: str | None  # the scorer service called, None: in-process
    runs: list[RLRun] = field(default_factory=list)
    results: list[EvalResult] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)


def grpo_plan(cfg: PipelineConfig, seed: int) -> GRPOPlan:
    """The GRPO plan of one seed: identical for every selection but the seed."""
    rl = cfg.vlm.rl
    return GRPOPlan(
        steps=rl.steps,
        num_generations=rl.num_generations,
        beta=rl.beta,
        lr=rl.lr,
        batch_size=rl.batch_size,
        max_completion_length=rl.max_completion_length,
        temperature=rl.temperature,
        seed=seed,
    )


def rl_scorer_version(cfg: PipelineConfig) -> str:
    """The scorer version that rewards: `vlm.bon.scorer`, else `scoring.current`."""
    name = cfg.vlm.bon.scorer
    return version_named(cfg, name) if name else current_version(cfg)


def rl_reward(cfg: PipelineConfig, store: ArtifactStore, version: str) -> ScorerReward:
    """The paper's reward over the scorer: the service at `serving.url` (refused unless it
    serves `version`), else `version` loaded from score_model."""
    rl = cfg.vlm.rl
    scorer = scorer_for(cfg, store, version)
    return ScorerReward(scorer=scorer, reward_type=rl.reward_type, format_weight=rl.format_weight)


def _key(cfg: PipelineConfig, *, sft_key: str, version: str, seed: int) -> str:
    """What an RL checkpoint depends on: its SFT start (which fixes the prompts), reward, plan."""
    rl = cfg.vlm.rl
    payload = {
        "plan": asdict(grpo_plan(cfg, seed)),
        "sft_key": sft_key,
        "scorer_version": version,
        "scorer_url": cfg.serving.url,
        "reward": [rl.reward_type, rl.format_weight],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _read_meta(store: ArtifactStore, folder: str) -> dict:
    return json.loads(store.fs.cat_file(store.path(folder, META_FILE)))


def _sft_meta(store: ArtifactStore, selection: str, seed: int) -> dict:
    folder = vlm_checkpoint_dir(selection, seed)
    if not store.exists(folder, META_FILE):
        raise FileNotFoundError(
            f"no SFT checkpoint at {store.url(folder)}: materialize vlm_checkpoints for "
            f"selection {selection!r} first (GRPO starts from it)"
        )
    return _read_meta(store, folder)


def _last(history: list[dict], key: str) -> float | None:
    values = [h[key] for h in history if key in h]
    return float(values[-1]) if values else None


def _run(store: ArtifactStore, folder: str, meta: dict, *, reused: bool) -> RLRun:
    return RLRun(
        seed=meta["seed"],
        url=store.url(folder),
        sft_url=meta["sft_checkpoint"],
        adapter=meta["adapter"],
        final_reward=meta["final_reward"],
        final_loss=meta["final_loss"],
        reused=reused,
    )


def _rl_seed(
    cfg, *, manifest: SelectionManifest, triples, seed, store, reward_of, version, device, log
):
    """(model, processor, RLRun) for one seed, trained from its SFT checkpoint or reused.

    `reward_of()` builds the reward: only a seed that trains loads the scorer."""
    sft_folder, folder = vlm_checkpoint_dir(manifest.name, seed), vlm_rl_dir(manifest.name, seed)
    sft_meta = _sft_meta(store, manifest.name, seed)
    key = _key(cfg, sft_key=sft_meta["key"], version=version, seed=seed)
    if store.exists(folder, META_FILE) and _read_meta(store, folder).get("key") == key:
        model, processor, meta = load_checkpoint(store, folder, device)
        return model, processor, _run(store, folder, meta, reused=True)
    model, processor, _ = load_checkpoint(store, sft_folder, device)
    work = Path(cfg.storage.work_dir) / VLM_RL_ASSET / manifest.name / f"seed={seed}"
    plan = grpo_plan(cfg, seed)
    history = train_grpo(
        model, processor, triples, reward_of(), plan, output_dir=work, device=device, log=log
    )
    shutil.rmtree(work, ignore_errors=True)  # TRL's scratch: nothing in it is kept
    final_reward, final_loss = _last(history, "reward"), _last(history, "loss")
    meta = {
        "key": key,
        "selection": manifest.name,
        "manifest_digest": manifest.digest,
        "seed": seed,
        "base_model": sft_meta["base_model"],  # load_vlm rebuilds a LoRA base from it
        "adapter": sft_meta["adapter"],
        "sft_checkpoint": store.url(sft_folder),
        "sft_key": sft_meta["key"],
        "scorer_version": version,
        "scorer_url": cfg.serving.url,
        "reward_type": cfg.vlm.rl.reward_type,
        "format_weight": cfg.vlm.rl.format_weight,
        "plan": asdict(plan),
        "prompts": len(triples),
        "final_reward": final_reward,
        "final_loss": final_loss,
        "rewards": [h["reward"] for h in history if "reward" in h],
    }
    store_checkpoint(store, folder, model=model, processor=processor, meta=meta)
    return model, processor, _run(store, folder, meta, reused=False)


def run_vlm_rl_checkpoints(
    cfg: PipelineConfig,
    selection: str,
    store: ArtifactStore,
    lineage: LineageStore,
    run_id: str,
    log: Callable[[str], None] | None = None,
) -> VLMRLReport:
    """GRPO from every `vlm.seeds` SFT checkpoint of `selection`, evaluated; lineage rows."""
    if not runs_rl(cfg, selection):
        raise ValueError(
            f"vlm_rl_checkpoints does not run on {selection!r}: set vlm.enabled and "
            f"vlm.rl.enabled, and list its percent in vlm.ratios (now {list(cfg.vlm.ratios)})"
        )
    manifest = load_selection(store, selection)
    triples = vqa_triples(store, cfg, manifest)
    if not triples:
        raise ValueError(
            f"selection {selection!r} has no VQA examples to prompt GRPO with: materialize "
            "preference_pairs with VQA pairs for its batches, and set vlm.vqa_per_image >= 1"
        )
    version = rl_scorer_version(cfg)
    reward_of = functools.cache(functools.partial(rl_reward, cfg, store, version))
    questions, excluded = eval_questions(cfg, store)
    device = resolve_device(cfg.compute.device)
    rep = VLMRLReport(
        selection=selection,
        name=rl_selection(selection),
        digest=manifest.digest,
        prompts=len(triples),
        images=len({id(image) for image, _, _ in triples}),  # one decoded object per image
        steps=cfg.vlm.rl.steps,
        scorer_version=version,
        scorer_url=cfg.serving.url,
        excluded=excluded,
    )
    for seed in cfg.vlm.seeds:
        model, processor, run = _rl_seed(
            cfg,
            manifest=manifest,
            triples=triples,
            seed=seed,
            store=store,
            reward_of=reward_of,
            version=version,
            device=device,
            log=log,
        )
        rep.runs.append(run)
        rep.results += evaluate_vlm(
            cfg,
            model=model,
            processor=processor,
            questions=questions,
            selection=rep.name,
            seed=seed,
            url=run.url,
            excluded=excluded,
            device=device,
        )
    summary = {
        "selection": rep.selection,
        "manifest_digest": rep.digest,
        "base_model": cfg.vlm.model,
        "train_examples": rep.prompts,
        "train_images": rep.images,
        "steps": rep.steps,
    }
    # Under this asset: the SFT rows of the same selection stay.
    record_vlm_checkpoints(
        store,
        lineage,
        asset=VLM_RL_ASSET,
        folder=vlm_rl_dir(selection),
        summary=summary,
        runs=rep.runs,
        results=rep.results,
        run_id=run_id,
    )
    return rep
