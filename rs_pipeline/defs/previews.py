"""What an asset's materialization shows a reviewer at a glance, as Dagster metadata values:
preview tables (Markdown, or a Dagster table) and plots (a PNG embedded in Markdown).

The rows come from `core.previews` (read back from lineage) and the stage reports, the
pictures from `core.evaluation.plots`; this module only formats them. Each `*_previews`
function returns the preview keys of one asset, ready to merge into its metadata.
"""

from __future__ import annotations

import base64
import posixpath
from collections.abc import Mapping, Sequence

import dagster as dg

from rs_pipeline.core import previews
from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.evaluation.stage import score_splits
from rs_pipeline.core.evaluation.tables import markdown_records
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.core.pairs.rsrm import RecordProblem


def _plots():
    # matplotlib takes ~0.7 s to import: loading the definitions should not pay for it.
    from rs_pipeline.core.evaluation import plots

    return plots


MAX_CELL = 80  # characters of a text cell: a caption preview, not the caption file
NONE = "—"


def _cell(value: object, digits: int = 4) -> str:
    if value is None:
        return NONE
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    text = str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _flat(records: Sequence[Mapping]) -> list[dict[str, str]]:
    """Records with every key of any of them (first-seen order), every cell a short string."""
    heads = list(dict.fromkeys(k for r in records for k in r))
    short = {"sample_id", "caption_id", "pair_id"}  # content hashes: 12 characters identify
    return [
        {h: _cell(r.get(h))[:12] if h in short else _cell(r.get(h)) for h in heads} for r in records
    ]


def md_table(records: Sequence[Mapping], *, caption: str = "") -> dg.MarkdownMetadataValue:
    """Records as a Markdown table (text cells cut at MAX_CELL), under an optional caption."""
    head = f"{caption}\n\n" if caption else ""
    body = markdown_records(_flat(records)) if records else "_none_"
    return dg.MetadataValue.md(head + body)


def table(records: Sequence[Mapping]) -> dg.TableMetadataValue:
    """Records as a Dagster table (sortable in the UI); every cell as text."""
    flat = _flat(records)
    columns = [dg.TableColumn(name, "string") for name in flat[0]]
    rows = [dg.TableRecord(r) for r in flat]
    return dg.MetadataValue.table(rows, schema=dg.TableSchema(columns=columns))


def png(data: bytes, *, alt: str) -> dg.MarkdownMetadataValue:
    """A PNG embedded in Markdown as a data URL: the UI shows it inline, nothing to fetch."""
    encoded = base64.b64encode(data).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")


# -- the batch assets ------------------------------------------------------------------------


def ingest_previews(
    store: ArtifactStore, lineage: LineageStore, batches: Sequence[str], samples: list[dict]
) -> dict:
    """rs_images: thumbnails and manifest rows of the first images (of the first batch), and
    the first quarantined inputs with their reason."""
    sheet = previews.contact_sheet(store, batches[0])
    return {
        "thumbnails": png(sheet, alt=f"first images of {batches[0]}"),
        "preview_table": md_table(
            samples[: previews.PREVIEW_ROWS], caption="First images of the manifest"
        ),
        "quarantine_preview": md_table(
            previews.quarantine_head(lineage, batches), caption="First quarantined inputs"
        ),
    }


def caption_previews(
    lineage: LineageStore,
    batches: Sequence[str],
    by_captioner: Mapping[str, int],
    quality: Mapping[str, float],
) -> dict:
    """caption_candidates: every candidate of the first images, and a table per captioner."""
    per_captioner = [
        {"captioner": c, "candidates": n, "mean_true_quality": quality.get(c)}
        for c, n in by_captioner.items()
    ]
    return {
        "preview": md_table(
            previews.caption_head(lineage, batches), caption="Every candidate of the first images"
        ),
        "by_captioner": md_table(per_captioner),
    }


def pair_previews(
    lineage: LineageStore,
    batches: Sequence[str],
    problems_by_reason: Mapping[str, int],
    problems: Sequence[RecordProblem],
) -> dict:
    """preference_pairs: the first pairs of each kind; import problems by reason and the
    first ones, with file and line."""
    # The file's name, not its path: a long path would be cut where the name is.
    first = [
        {
            "file": posixpath.basename(p.source),
            "line": p.line,
            "reason": p.reason,
            "detail": p.detail,
        }
        for p in problems[: previews.PREVIEW_ROWS]
    ]
    caption = f"First {len(first)} of {len(problems)} import problems listed (file, line)"
    return {
        "preview": md_table(previews.pair_head(lineage, batches), caption="First pairs, by kind"),
        "import_problems_by_reason": dict(problems_by_reason),
        "import_problems": md_table(first, caption=caption),
    }


# -- scoring and selection -------------------------------------------------------------------


def score_previews(lineage: LineageStore, version: str, batches: Sequence[str]) -> dict:
    """pair_scores: a histogram of every pair score, and the highest and lowest scored pairs."""
    values = previews.score_values(lineage, version, batches)
    out = {
        "scorer_version": version,
        "extremes": md_table(
            previews.scored_extremes(lineage, version, batches),
            caption="Highest and lowest scored pairs",
        ),
    }
    if values:
        title = f"{version} on {', '.join(batches)}"
        out["score_histogram"] = png(
            _plots().histogram(values, title=title, xlabel="score"), alt="pair scores"
        )
    return out


def subset_previews(lineage: LineageStore, version: str, pool: int) -> dict:
    """curated_subsets: per selection the kept count, share and cut score; the best kept pairs;
    kept vs dropped score histograms (the same plot as the report's)."""
    summary = [
        r | {"share_of_pool": r["pairs"] / pool if pool else None}
        for r in previews.selection_summary(lineage, version)
    ]
    out = {
        "scorer_version": version,
        "selection_table": md_table(summary),
        "preview": md_table(
            previews.selection_head(lineage, version), caption="Best kept pairs per selection"
        ),
    }
    splits = score_splits(lineage, [r["selection"] for r in summary])
    if splits:
        out["score_histograms"] = png(_plots().score_histograms(splits), alt="kept vs dropped")
    return out


# -- the training assets (for score_model, clip_checkpoints, vlm_checkpoints) ----------------


def score_model_previews(history: Sequence[dict], metrics: Mapping[str, object]) -> dict:
    """score_model: the staged training curve (held-out accuracy and loss per stage over the
    global step) and its validation figures (`metrics`: name -> value) as a table."""
    out = {
        "val_metrics": md_table([{"metric": k, "value": v} for k, v in metrics.items()]),
    }
    panels = previews.training_curves(history)
    if panels:
        out["training_curve"] = png(_plots().curves(panels, xlabel="step"), alt="training curve")
    return out


def checkpoint_previews(
    runs: Sequence, results: Sequence, *, train_metric: str = "final_loss"
) -> dict:
    """clip_checkpoints / vlm_checkpoints (/ vlm_rl_checkpoints with `final_reward`): one row
    per seed, its training figure and every benchmark metric, as a sortable table."""
    rows = previews.seed_metrics(runs, results, train_metric=train_metric)
    return {"per_seed": table(rows)} if rows else {}


def bon_previews(accuracy: Mapping[str, Mapping[int, float | None]]) -> dict:
    """bon_eval: accuracy per strategy (rows) and N (columns), mean over seeds and benchmarks."""
    rows = [
        {"strategy": s, **{f"N={n}": a for n, a in by_n.items()}} for s, by_n in accuracy.items()
    ]
    return {"accuracy_table": md_table(rows)}
