"""What each selection kept, and the record a curation run leaves (JSON-ready)."""

from __future__ import annotations

from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.evaluation.paired import oracle_share, paired_rows
from rs_pipeline.core.evaluation.report import markdown_table, paired_markdown
from rs_pipeline.core.evaluation.summary import ReportTable

GOOD = 0.5  # a candidate whose true quality reaches this is a good caption

# One row per selection (and the pool): images, pairs, precision overall, on images the judge
# saw and on those it did not, and the share of class-changing errors kept. True quality is
# read here for measurement only; selection never saw it.
_COMPOSITION_SQL = f"""
WITH pool AS (SELECT caption_id, sample_id, quality, degradation FROM captions
              WHERE status = 'ok'),
judged AS (SELECT DISTINCT sample_id FROM pairs WHERE kind = 'caption'),
sel AS (SELECT selection, caption_id FROM selections
        UNION ALL SELECT 'pool (all@100)', caption_id FROM pool)
SELECT s.selection,
       count(DISTINCT p.sample_id) AS images,
       count(*) AS pairs,
       avg(CASE WHEN p.quality >= {GOOD} THEN 1.0 ELSE 0.0 END) AS precision,
       avg(CASE WHEN j.sample_id IS NOT NULL THEN
           CASE WHEN p.quality >= {GOOD} THEN 1.0 ELSE 0.0 END END) AS precision_judged,
       avg(CASE WHEN j.sample_id IS NULL THEN
           CASE WHEN p.quality >= {GOOD} THEN 1.0 ELSE 0.0 END END) AS precision_unjudged,
       avg(CASE WHEN split_part(p.degradation, ':', 1) IN
           ('other_class_caption', 'class_swap', 'wrong_class') THEN 1.0 ELSE 0.0 END)
           AS class_changing_share,
       count(p.quality) AS with_known_quality
FROM sel s JOIN pool p USING (caption_id)
LEFT JOIN judged j ON j.sample_id = p.sample_id
GROUP BY s.selection ORDER BY s.selection
"""


def composition(lineage) -> list[dict]:
    """Per selection: images, pairs, precision (overall / judged / unjudged images)."""
    rows = lineage.query(_COMPOSITION_SQL).to_pylist()
    judged = lineage.query(
        "SELECT count(DISTINCT sample_id) AS n FROM pairs WHERE kind = 'caption'"
    ).to_pylist()[0]["n"]
    images = lineage.query("SELECT count(DISTINCT sample_id) AS n FROM captions").to_pylist()
    for r in rows:
        r["judged_images_in_pool"], r["images_in_pool"] = judged, images[0]["n"]
    return [r for r in rows if r["selection"] != "all@100"]  # the same rows as the pool line


def composition_markdown(rows: list[dict]) -> str:
    """The composition rows as a Markdown table."""

    def pct(v):
        return "n/a" if v is None else f"{v:.3f}"

    lines = ["| selection | images | pairs | precision | on judged images | on unjudged images "
             "| class-changing share |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['selection']} | {r['images']} | {r['pairs']} | {pct(r['precision'])} "
                     f"| {pct(r['precision_judged'])} | {pct(r['precision_unjudged'])} "
                     f"| {pct(r['class_changing_share'])} |")  # fmt: skip
    return "\n".join(lines)


def _shares(table: ReportTable) -> dict[str, float | None]:
    column = table.primary_columns[0]
    return {
        r.selection: oracle_share(table, column, r.selection)
        for r in table.rows
        if r.scorer not in ("oracle", "all") and r.selection != "all@100"
    }


def run_record(cfg: PipelineConfig, table: ReportTable, kept: list[dict], seconds: float,
               machine: str) -> dict:  # fmt: skip
    """Everything one run measured, JSON-ready; tables and plots are rebuilt from it."""
    column = table.primary_columns[0]
    paired = [
        {"selection": p.selection,
         "vs_all": None if p.vs_all is None else p.vs_all.to_dict(),
         "vs_clipscore": None if p.vs_baseline is None else p.vs_baseline.to_dict()}
        for p in paired_rows(table, column)
    ]  # fmt: skip
    f = cfg.finetune
    return {
        "machine": machine,
        "seconds": seconds,
        "plan": {
            "steps": f.steps,
            "batch_size": f.batch_size,
            "lr": f.lr,
            "seeds": list(f.seeds),
            "clip_model": f.clip_model,
            "init": f.clip_weights or "random",
            "judged_fraction": cfg.pairs.judged_fraction,
            "judge": cfg.pairs.judge,
            "noise_rate": cfg.captions.noise.rate,
        },  # fmt: skip
        "table": table.to_dict(),
        "paired": paired,
        "oracle_share": _shares(table),
        "composition": kept,
        "headline_md": "\n\n".join(
            [markdown_table(table), paired_markdown(table), composition_markdown(kept)]
        ),
    }
