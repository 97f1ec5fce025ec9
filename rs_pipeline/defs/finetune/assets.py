"""CLIP fine-tuned on each curated selection (and on `all@100`), one checkpoint per seed."""

import dagster as dg

from rs_pipeline.core.finetune.stage import run_clip_checkpoints
from rs_pipeline.defs.gpu import GPU_OP_TAGS, GPU_POOL
from rs_pipeline.defs.partitions import selection_partitions
from rs_pipeline.defs.resources import ArtifactStoreResource, LineageResource, PipelineSettings


@dg.asset(
    partitions_def=selection_partitions,
    # A selection `<version>@<pct>` reads curated_subsets[<version>]; `all@100` reads every
    # batch's candidates. Dagster has no built-in mapping for "prefix before @", so both
    # upstreams are declared whole; re-training is cheap when nothing changed (checkpoints
    # whose plan and manifest digest match are reused, not retrained).
    deps=[
        dg.AssetDep("curated_subsets", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("caption_candidates", partition_mapping=dg.AllPartitionMapping()),
    ],
    code_version="1",
    group_name="finetune",
    kinds={"pytorch", "safetensors"},
    tags={"stage": "clip_checkpoints"},
    op_tags=GPU_OP_TAGS,
    pool=GPU_POOL,
)
def clip_checkpoints(
    context: dg.AssetExecutionContext,
    settings: PipelineSettings,
    artifacts: ArtifactStoreResource,
    lineage: LineageResource,
) -> dg.MaterializeResult:
    """One open_clip checkpoint per configured seed, trained for the same number of steps on
    this selection's pairs, with its evaluation on every configured benchmark."""
    rep = run_clip_checkpoints(
        cfg=settings.load(),
        selection=context.partition_key,
        store=artifacts.store(),
        lineage=lineage.store(),
        run_id=context.run_id,
        log=context.log.info,
    )
    top1 = [r.value for r in rep.results if r.metric == "top1"]
    return dg.MaterializeResult(
        metadata={
            "train_pairs": rep.train_pairs,
            "train_images": rep.train_images,
            "steps": rep.steps,
            "seeds": [r.seed for r in rep.runs],
            "reused_seeds": [r.seed for r in rep.runs if r.reused],
            "final_loss": dg.MetadataValue.json({r.seed: r.final_loss for r in rep.runs}),
            "mean_top1": sum(top1) / len(top1) if top1 else None,
            "excluded_eval_images": dg.MetadataValue.json(rep.excluded),
            "manifest_digest": rep.digest,
            "checkpoints": dg.MetadataValue.json([r.url for r in rep.runs]),
        },
        data_version=dg.DataVersion(rep.digest[:16]),
    )
