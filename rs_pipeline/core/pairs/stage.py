"""The `preference_pairs` stage: judged caption pairs, VQA pairs and imported pairs."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.captions.base import Candidate, Judge, Ranking, SampleView
from rs_pipeline.core.captions.registry import build_judges
from rs_pipeline.core.captions.views import iter_views, load_manifest
from rs_pipeline.core.config import PairsConfig, PipelineConfig
from rs_pipeline.core.device import resolve_device
from rs_pipeline.core.layout import CAPTIONS_FILE, PAIRS_ASSET, PAIRS_FILE, captions_dir, pairs_dir
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.pairs.build import agreement_rate, best_vs_rest, pairwise_agreement
from rs_pipeline.core.pairs.rsrm import MAX_PROBLEMS_LISTED, RecordProblem, import_rsrm
from rs_pipeline.core.pairs.split import assign_split, split_key
from rs_pipeline.core.pairs.vqa import PriorAnswerer, Question, is_correct, questions_for
from rs_pipeline.core.records import PAIR_SCHEMA, PreferencePair, pair_id_of, to_table
from rs_pipeline.core.seeds import unit_from
from rs_pipeline.core.sources.synthrs import TileAnnotation

log = logging.getLogger(__name__)
_IMPORTED_KEYS = ("read", "attached_pairs")  # rep.imports keys that are not a failure


@dataclass
class PairsReport:
    """What the stage wrote and why anything was skipped."""

    batch: str
    url: str = ""
    by_kind: Counter = field(default_factory=Counter)
    by_split: Counter = field(default_factory=Counter)
    by_judge: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    vqa: Counter = field(default_factory=Counter)
    imports: Counter = field(default_factory=Counter)
    import_problems: list[RecordProblem] = field(default_factory=list)  # per record, with line
    agreement_parts: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    samples_in_both_splits: int = 0
    judged_images: int = 0  # images the judge ranked (pairs.judged_fraction of the batch)

    @property
    def agreement_with_oracle(self) -> dict[str, float | None]:
        """Each non-oracle judge's pairwise agreement with the oracle, pooled over images."""
        return {k: agreement_rate(v) for k, v in sorted(self.agreement_parts.items())}

    @property
    def import_problems_by_reason(self) -> dict[str, int]:
        """Imported records (and pairs) that attached to nothing, counted by reason."""
        return {k: n for k, n in sorted(self.imports.items()) if k not in _IMPORTED_KEYS}


class _Pairs:
    """Collects pairs, assigning each the split of its image."""

    def __init__(self, batch: str, splits: dict[str, str]) -> None:
        self.batch, self.splits, self.rows = batch, splits, {}

    def add(
        self,
        sid: str,
        kind: str,
        *,
        question: str | None,
        chosen: str,
        rejected: str,
        cids: tuple[str | None, str | None] = (None, None),
        judge: str = "",
        margin: float | None = None,
    ) -> None:
        pid = pair_id_of(sid, kind, question, chosen, rejected)
        pair = PreferencePair(
            pair_id=pid,
            batch=self.batch,
            sample_id=sid,
            kind=kind,
            question=question,
            chosen=chosen,
            rejected=rejected,
            chosen_caption_id=cids[0],
            rejected_caption_id=cids[1],
            judge=judge,
            margin=margin,
            split=self.splits[sid],
        )
        self.rows.setdefault(pid, pair)


def is_judged(sample_id: str, fraction: float, seed: int) -> bool:
    """Whether the judge sees this image: a seeded hash draw, stable across batches and runs."""
    return fraction >= 1.0 or unit_from("judged", seed, sample_id) < fraction


def _primary(judge: str, view: SampleView) -> str | None:
    if judge != "auto":
        return judge
    if view.annotation is not None:
        return "oracle"
    return "label_consistency" if view.label else None


def _judge_image(view, cands, judges: dict[str, Judge], cfg: PairsConfig, out: _Pairs, rep):
    """Rank one image's candidates, add best-vs-rest pairs, record agreement with the oracle."""
    if len(cands) < 2:
        rep.skipped["fewer_than_2_candidates"] += 1
        return
    texts = [c for _, c in cands]
    rankings: dict[str, Ranking | None] = {}
    name = _primary(cfg.judge, view)
    if name is None:
        rep.skipped["no_judge_for_image"] += 1
        return
    rankings[name] = judges[name].rank(view, texts)
    if rankings[name] is None:
        rep.skipped[f"unjudged_by_{name}"] += 1
        return
    pairs, ties = best_vs_rest(rankings[name])
    rep.skipped["ties"] += ties
    rep.by_judge[judges[name].id] += len(pairs)
    for p in pairs:
        (ci, c), (ri, r) = cands[p.chosen], cands[p.rejected]
        out.add(
            view.sample_id,
            "caption",
            question=None,
            chosen=c.text,
            rejected=r.text,
            cids=(ci, ri),
            judge=judges[name].id,
            margin=p.margin,
        )
    if cfg.compare_judges:  # where the oracle knows the truth (ground truth or injection)
        oracle = rankings.get("oracle") or judges["oracle"].rank(view, texts)
        for other, judge in judges.items():
            if other == "oracle" or oracle is None:
                continue
            ranking = rankings.get(other) or judge.rank(view, texts)
            if ranking is not None:
                rep.agreement_parts[judge.id].append(
                    pairwise_agreement(ranking, oracle, len(texts))
                )


def _vqa(chunk, questions: dict[str, list[Question]], answerer, out: _Pairs, rep) -> None:
    """Ask, compare with the reference, keep the model's mistakes as rejected answers."""
    asked = [q for v in chunk for q in questions.get(v.sample_id, ())]
    if not asked:
        return
    answers = answerer.answer(chunk, asked)
    for q, answer in zip(asked, answers, strict=True):
        rep.vqa[f"asked_{q.qtype}"] += 1
        if is_correct(q, answer):
            rep.vqa["filtered_already_right"] += 1
            continue
        if not answer.strip():
            rep.vqa["no_answer"] += 1
            continue
        kind = "vqa_closed" if q.closed else "vqa_open"
        out.add(
            q.sample_id,
            kind,
            question=q.text,
            chosen=q.reference,
            rejected=answer,
            judge=answerer.id,
        )


def _imports(cfg: PairsConfig, out: _Pairs, rep) -> None:
    problems = rep.import_problems
    for pair in import_rsrm(cfg.import_files, cfg.import_image_root, rep.imports, problems):
        if pair.sample_id not in out.splits:
            rep.imports["image_not_in_batch"] += 1  # per pair; listed once per record
            bad = RecordProblem(pair.source, pair.line, "image_not_in_batch", pair.sample_id)
            if (not problems or problems[-1] != bad) and len(problems) < MAX_PROBLEMS_LISTED:
                problems.append(bad)
            continue
        rep.imports["attached_pairs"] += 1
        out.add(
            pair.sample_id,
            "imported",
            question=pair.question,
            chosen=pair.chosen,
            rejected=pair.rejected,
            judge="rsrm-import",
        )
    _warn_unattached(rep)


def _warn_unattached(rep) -> None:
    """Log what of the imported files attached to nothing, by reason (also in `rep.imports`)."""
    unattached = rep.import_problems_by_reason
    if unattached:
        first = "; ".join(f"{p.source}:{p.line} {p.reason}" for p in rep.import_problems[:5])
        log.warning("preference import: not attached, by reason %s (first: %s)", unattached, first)


def _answerer(cfg: PipelineConfig, questions: list[Question]):
    """The model whose VQA mistakes become rejected answers."""
    if cfg.pairs.vqa.answerer == "prior":
        return PriorAnswerer(questions)
    if not cfg.captions.vlm.enabled:
        raise ValueError("pairs.vqa.answerer `vlm` needs captions.vlm (enabled, checkpoint)")
    from rs_pipeline.core.captions.registry import vlm_captioner
    from rs_pipeline.core.pairs.answerers import VLMAnswerer

    device = resolve_device(cfg.compute.device)
    return VLMAnswerer(vlm_captioner(cfg.captions.vlm, cfg.captions.seed, device))


def _candidates_by_image(store: ArtifactStore, batch: str) -> dict[str, list]:
    table = store.read_table(captions_dir(batch), CAPTIONS_FILE)
    by_image: dict[str, list] = defaultdict(list)
    for r in table.to_pylist():
        if r["status"] == "ok" and r["text"].strip():
            cand = Candidate(r["sample_id"], r["captioner_id"], r["text"], r["degradation"])
            by_image[r["sample_id"]].append((r["caption_id"], cand))
    return by_image


def run_pairs(
    cfg: PipelineConfig, batch: str, store: ArtifactStore, lineage: LineageStore, run_id: str
) -> PairsReport:
    """Build every kind of pair for `batch`; write Parquet and lineage rows."""
    pc, rep = cfg.pairs, PairsReport(batch)
    manifest = load_manifest(store, batch).to_pylist()
    splits = {
        r["sample_id"]: assign_split(
            split_key(r["sample_id"], r["lat"], r["lon"], pc.spatial_block_deg),
            pc.val_fraction, pc.split_seed)
        for r in manifest
    }  # fmt: skip
    out = _Pairs(batch, splits)
    questions = {}
    if pc.vqa.enabled:
        for r in manifest:
            ann = TileAnnotation.from_json(r["annotation_json"]) if r["annotation_json"] else None
            questions[r["sample_id"]] = questions_for(r["sample_id"], ann, pc.vqa.max_per_image)
    answerer = _answerer(cfg, [q for qs in questions.values() for q in qs])
    cands, judges = _candidates_by_image(store, batch), build_judges(pc.judge, pc.judge_endpoint)
    for chunk in iter_views(store, batch, cfg.captions.chunk_size):
        judged = [v for v in chunk if is_judged(v.sample_id, pc.judged_fraction, cfg.captions.seed)]
        rep.skipped["not_judged"] += len(chunk) - len(judged)
        rep.judged_images += len(judged)
        for view in judged:
            _judge_image(view, cands.get(view.sample_id, []), judges, pc, out, rep)
        _vqa(judged, questions, answerer, out, rep)
    _imports(pc, out, rep)
    return _finish(out, rep, store, lineage, run_id)


def _finish(out: _Pairs, rep: PairsReport, store, lineage, run_id: str) -> PairsReport:
    rows = list(out.rows.values())
    table = to_table(rows, PAIR_SCHEMA)
    rep.url = store.write_table(table, pairs_dir(rep.batch), PAIRS_FILE)
    lineage.replace_partition(
        "pairs", table, asset=PAIRS_ASSET, partition_key=rep.batch, run_id=run_id
    )
    rep.by_kind = Counter(r.kind for r in rows)
    rep.by_split = Counter(r.split for r in rows)
    split_sets = defaultdict(set)
    for r in rows:
        split_sets[r.split].add(r.sample_id)
    rep.samples_in_both_splits = len(split_sets["train"] & split_sets["val"])
    return rep
