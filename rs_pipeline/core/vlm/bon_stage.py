"""The `bon_eval` stage: best-of-N answers of one selection's VLM checkpoints.

For every evaluation question each checkpoint samples N answers (the paper: temperature 0.85,
top-p 0.95); the scorer keeps the one it ranks highest. Greedy decoding, a random pick, a
majority vote and a CLIP-score pick are the baselines, at every N of `vlm.bon.n`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.device import resolve_device
from rs_pipeline.core.layout import BON_ASSET, bon_dir, vlm_checkpoint_dir
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.records import BON_SCHEMA
from rs_pipeline.core.scoring.apply import scorer_for, stored_scorer
from rs_pipeline.core.scoring.versions import current_version, version_named
from rs_pipeline.core.vlm.bon import BonRow, bon_rows, score_answers
from rs_pipeline.core.vlm.generate import greedy_answers, sampled_answers
from rs_pipeline.core.vlm.questions import EvalQuestion
from rs_pipeline.core.vlm.stage import eval_questions, load_checkpoint, trains_vlm
from rs_pipeline.core.vlm.weights import META_FILE


@dataclass
class BonReport:
    """Best-of-N accuracy of one selection's checkpoints, per seed, benchmark, strategy, N."""

    selection: str
    scorer_version: str
    clip_version: str | None
    questions: int
    rows: list[dict] = field(default_factory=list)  # BON_SCHEMA rows
    url: str = ""

    def accuracy_table(self) -> dict[str, dict[int, float | None]]:
        """strategy -> N -> mean accuracy over seeds and benchmarks (asset metadata)."""
        strategies = {r["strategy"] for r in self.rows}
        ns = {s: sorted({r["n"] for r in self.rows if r["strategy"] == s}) for s in strategies}
        return {s: {n: self.accuracy(s, n) for n in ns[s]} for s in sorted(ns)}

    def accuracy(self, strategy: str, n: int) -> float | None:
        """Mean over seeds and benchmarks of one strategy at one N."""
        xs = [r["accuracy"] for r in self.rows if r["strategy"] == strategy and r["n"] == n]
        return sum(xs) / len(xs) if xs else None


def runs_bon(cfg: PipelineConfig, selection: str) -> bool:
    """Whether best-of-N runs on `selection`: every selection the VLM trains on."""
    return cfg.vlm.bon.enabled and trains_vlm(cfg, selection)


def capped(questions: list[EvalQuestion], per_benchmark: int | None) -> list[EvalQuestion]:
    """The first `per_benchmark` questions of each benchmark (N answers are sampled for each)."""
    if per_benchmark is None:
        return questions
    seen: dict[str, int] = defaultdict(int)
    out = []
    for q in questions:
        if seen[q.benchmark] < per_benchmark:
            seen[q.benchmark] += 1
            out.append(q)
    return out


def _scorers(cfg: PipelineConfig, store: ArtifactStore):
    """({"scorer": ..., "clipscore": ...}, their versions): the ranking scorer in-process or
    from the service at `serving.url`; the CLIP-score baseline always in-process (one service
    serves one version)."""
    bon = cfg.vlm.bon
    version = version_named(cfg, bon.scorer) if bon.scorer else current_version(cfg)
    scorers = {"scorer": scorer_for(cfg, store, version)}
    clip_version = version_named(cfg, bon.clip_scorer) if bon.clip_scorer else None
    if clip_version:
        scorers["clipscore"] = stored_scorer(store, clip_version)
    return scorers, version, clip_version


def _seed_rows(cfg, *, model, processor, questions, scorers, seed: int, device) -> list[BonRow]:
    """BoN rows of one checkpoint: greedy, then each strategy at each N."""
    bon, v = cfg.vlm.bon, cfg.vlm
    common = dict(max_new_tokens=v.max_new_tokens, batch_size=v.eval_batch_size, device=device)
    greedy = greedy_answers(model, processor, questions, **common)
    samples = sampled_answers(
        model,
        processor,
        questions,
        n=max(bon.n),
        temperature=bon.temperature,
        top_p=bon.top_p,
        seed=seed,
        **common,
    )
    scores = {
        name: score_answers(scorer, questions, samples, batch_size=cfg.scoring.score_batch_size)
        for name, scorer in scorers.items()
    }
    return bon_rows(questions, greedy, samples, scores, ns=sorted(bon.n), seed=seed)


def run_bon_eval(
    cfg: PipelineConfig,
    selection: str,
    store: ArtifactStore,
    lineage: LineageStore,
    run_id: str,
    log: Callable[[str], None] | None = None,
) -> BonReport:
    """Best-of-N over every `vlm.seeds` checkpoint of `selection`; Parquet + lineage rows.

    The ranking scorer is a running `rs-pipeline serve` when `serving.url` is set, else the
    stored one loaded in-process.
    """
    if not runs_bon(cfg, selection):
        raise ValueError(
            f"bon_eval does not run on {selection!r}: set vlm.enabled and vlm.bon.enabled, "
            f"and list its percent in vlm.ratios (now {list(cfg.vlm.ratios)})"
        )
    questions = capped(eval_questions(cfg, store)[0], cfg.vlm.bon.max_questions)
    scorers, version, clip_version = _scorers(cfg, store)
    device = resolve_device(cfg.compute.device)
    rep = BonReport(selection, version, clip_version, len(questions))
    for seed in cfg.vlm.seeds:
        folder = vlm_checkpoint_dir(selection, seed)
        if not store.exists(folder, META_FILE):
            raise FileNotFoundError(
                f"no VLM checkpoint at {store.url(folder)}: materialize vlm_checkpoints for "
                f"selection {selection!r} first"
            )
        model, processor, _ = load_checkpoint(store, folder, device)
        if log:
            log(f"bon_eval {selection} seed {seed}: {len(questions)} questions")
        rows = _seed_rows(
            cfg,
            model=model,
            processor=processor,
            questions=questions,
            scorers=scorers,
            seed=seed,
            device=device,
        )
        rep.rows += [
            {
                "selection": selection,
                "seed": seed,
                "benchmark": r.benchmark,
                "scorer_version": version,
                "strategy": r.strategy,
                "n": r.n,
                "accuracy": r.accuracy,
                "questions": r.questions,
                "checkpoint": store.url(folder),
            }
            for r in rows
        ]
    table = pa.Table.from_pylist(rep.rows, schema=BON_SCHEMA)
    rep.url = store.write_table(table, bon_dir(selection), "bon.parquet")
    tag = {"asset": BON_ASSET, "partition_key": selection, "run_id": run_id}
    lineage.replace_partition("bon_results", table, **tag)
    return rep
