"""The evaluation report: Markdown, HTML and JSON with PNG plots under one artifact folder.

The numbers come from `summary.summarize` (and the paired statistics from `paired`), the
formatted rows from `tables`; this module lays them out and writes them. Its names are
re-exported so callers import the whole report API from here.

CLIP metrics and a VLM's VQA accuracies arrive mixed (one lineage table) and are split by
metric name, so each family gets its own table. The model-family, VQA and best-of-N sections
come after the CLIP ones and only when they have rows, so a CLIP-only report reads as before.
"""

from __future__ import annotations

import html
import json
import posixpath
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from fsspec.implementations.local import LocalFileSystem

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.evaluation.bon_summary import BonResult, BonTable, summarize_bon
from rs_pipeline.core.evaluation.paired import (
    PairedDiff,
    PairedRow,
    oracle_share,
    paired,
    paired_difference,
    paired_rows,
)
from rs_pipeline.core.evaluation.results import EvalResult
from rs_pipeline.core.evaluation.summary import (
    Cell,
    Column,
    Counts,
    ReportRow,
    ReportTable,
    ScoreSplit,
    TrainedOn,
    split_results,
    summarize,
)
from rs_pipeline.core.evaluation.tables import (
    PAIRED_HEADING,
    VS_ALL,
    VS_BASELINE,
    bon_records,
    counts_records,
    markdown_records,
    markdown_table,
    paired_markdown,
    paired_records,
    table_records,
    trained_on_records,
)

__all__ = [
    "Cell",
    "Column",
    "Counts",
    "PAIRED_HEADING",
    "VS_ALL",
    "VS_BASELINE",
    "PairedDiff",
    "PairedRow",
    "ReportPaths",
    "ReportRow",
    "ReportTable",
    "ScoreSplit",
    "TrainedOn",
    "VlmSections",
    "bon_records",
    "markdown_table",
    "oracle_share",
    "paired",
    "paired_difference",
    "paired_markdown",
    "paired_records",
    "paired_rows",
    "summarize",
    "table_records",
    "trained_on_records",
    "write_report",
]

ACCURACY_PNG, HISTOGRAM_PNG = "accuracy_vs_ratio.png", "score_histograms.png"
BON_PNG = "bon_accuracy_vs_n.png"
TRAINED_HEADING = "Which selections each model family trained on"
VQA_HEADING = "VQA accuracy"
VQA_PAIRED_HEADING = f"VQA {PAIRED_HEADING[0].lower()}{PAIRED_HEADING[1:]}"
BON_HEADING = "Best-of-N accuracy (mean ± std over checkpoints; pooled, then per selection)"
BON_PLOT_HEADING = "Best-of-N accuracy vs N"


@dataclass(frozen=True)
class ReportPaths:
    """URLs of one written report."""

    folder: str
    markdown: str
    html: str
    json: str
    plots: dict[str, str] = field(hash=False)  # file name -> URL


@dataclass(frozen=True)
class VlmSections:
    """What the report shows beyond CLIP; every part empty where no VLM was trained."""

    vqa: ReportTable | None = None  # VQA accuracies, selections x (benchmark, vqa metric)
    bon: BonTable | None = None
    trained_on: tuple[TrainedOn, ...] = ()


NO_VLM = VlmSections()  # a CLIP-only report


def _paired_json(table: ReportTable) -> list[dict]:
    """Every paired difference of the primary columns, with all its numbers."""
    return [
        {"selection": pr.selection, **diff.to_dict()}
        for col in table.primary_columns
        for pr in paired_rows(table, col)
        for diff in (pr.vs_all, pr.vs_baseline)
        if diff is not None
    ]


def _html_table(records: list[dict[str, str | int]]) -> str:
    heads = list(records[0])
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r[h]))}</td>" for h in heads) + "</tr>"
        for r in records
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}img{max-width:100%}"
)


def _vlm_sections(vlm: VlmSections, plots: Sequence[str]) -> list[tuple[str, list | str]]:
    """The model-family, VQA and best-of-N sections, each only where it has rows."""
    out: list[tuple[str, list | str]] = []
    if vlm.trained_on:
        out.append((TRAINED_HEADING, trained_on_records(vlm.trained_on)))
    if vlm.vqa is not None:
        out.append((VQA_HEADING, table_records(vlm.vqa, vlm.vqa.columns)))
        out.append((VQA_PAIRED_HEADING, paired_records(vlm.vqa)))
    if vlm.bon is not None:
        out.append((BON_HEADING, bon_records(vlm.bon)))
        if BON_PNG in plots:
            out.append((BON_PLOT_HEADING, BON_PNG))
    return out


def _sections(
    table: ReportTable, plots: Sequence[str], vlm: VlmSections
) -> list[tuple[str, list | str]]:
    """(heading, records or an image name) in reading order, shared by Markdown and HTML."""
    out: list[tuple[str, list | str]] = [("Headline", table_records(table))]
    out.append((PAIRED_HEADING, paired_records(table)))
    out.append(("Images evaluated (after decontamination)", counts_records(table)))
    clip_plots = [name for name in plots if name != BON_PNG]  # the BoN plot sits with its table
    out += [(name.removesuffix(".png").replace("_", " ").capitalize(), name) for name in clip_plots]
    out.append(("All metrics", table_records(table, table.columns)))
    return out + _vlm_sections(vlm, plots)


def render_markdown(
    table: ReportTable,
    title: str,
    generated_at: str,
    plots: Sequence[str],
    vlm: VlmSections = NO_VLM,
) -> str:
    """The whole report as Markdown; images by relative name."""
    seeds = ", ".join(map(str, table.seeds))
    parts = [f"# {title}", f"Generated {generated_at}; seeds {seeds}; mean ± sample std."]
    for heading, body in _sections(table, plots, vlm):
        content = f"![{heading}]({body})" if isinstance(body, str) else markdown_records(body)
        parts += [f"## {heading}", content]
    return "\n\n".join(parts) + "\n"


def render_html(
    table: ReportTable,
    title: str,
    generated_at: str,
    plots: Sequence[str],
    vlm: VlmSections = NO_VLM,
) -> str:
    """The whole report as one HTML page (inline CSS); images by relative name."""
    seeds = ", ".join(map(str, table.seeds))
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Generated {html.escape(generated_at)}; seeds {seeds}; mean ± sample std.</p>",
    ]
    for heading, body in _sections(table, plots, vlm):
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(
            f'<img src="{html.escape(body)}" alt="{html.escape(heading)}">'
            if isinstance(body, str)
            else _html_table(body)
        )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(parts)}</body></html>\n"
    )


def _write(store: ArtifactStore, folder: str, name: str, data: bytes) -> str:
    """Write one file, replacing any previous one; local writes rename into place."""
    path = store.path(folder, name)
    store.fs.makedirs(posixpath.dirname(path), exist_ok=True)
    if isinstance(store.fs, LocalFileSystem):
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        store.fs.pipe_file(tmp, data)
        store.fs.mv(tmp, path)
    else:
        store.fs.pipe_file(path, data)
    return store.url(folder, name)


def _write_plot(store: ArtifactStore, folder: str, name: str, png: bytes | None) -> str | None:
    """Write one plot, or remove a stale one this report has nothing for (None)."""
    if png is not None:
        return _write(store, folder, name, png)
    if store.fs.exists(store.path(folder, name)):
        store.fs.rm(store.path(folder, name))
    return None


def _plots(
    store: ArtifactStore,
    folder: str,
    table: ReportTable,
    splits: Sequence[ScoreSplit],
    bon: BonTable | None,
) -> dict[str, str]:
    """Write every plot this report has (file name -> URL), removing stale ones."""
    # Imported here: matplotlib takes ~0.7 s to load; printing a table should not pay for it.
    from rs_pipeline.core.evaluation import plots

    pngs = {
        ACCURACY_PNG: plots.accuracy_vs_ratio(table),
        HISTOGRAM_PNG: plots.score_histograms(splits) if splits else None,
        BON_PNG: plots.bon_accuracy_vs_n(bon) if bon is not None else None,
    }
    urls = {name: _write_plot(store, folder, name, png) for name, png in pngs.items()}
    return {name: url for name, url in urls.items() if url is not None}


def _vlm_json(vlm: VlmSections, bon: Sequence[BonResult]) -> dict:
    """The `vqa`, `bon` and `trained_on` keys of report.json (None / [] where absent)."""
    vqa = None
    if vlm.vqa is not None:
        vqa = {"table": vlm.vqa.to_dict(), "paired": _paired_json(vlm.vqa)}
    best = None
    if vlm.bon is not None:
        best = {"table": vlm.bon.to_dict(), "results": [r.row() for r in bon]}
    return {"vqa": vqa, "bon": best, "trained_on": [asdict(t) for t in vlm.trained_on]}


def write_report(
    store: ArtifactStore,
    folder: str,
    results: Sequence[EvalResult],
    splits: Sequence[ScoreSplit] = (),
    title: str = "Evaluation report",
    generated_at: datetime | None = None,
    *,
    bon: Sequence[BonResult] = (),
    trained_on: Sequence[TrainedOn] = (),
) -> ReportPaths:
    """Write report.md/.html/.json and the PNG plots under `folder`; re-writing replaces them.

    `results` may mix CLIP metrics and VQA accuracies (`vqa_*`): they are reported apart.
    """
    clip, vqa = split_results(results)
    table = summarize(clip)
    vlm = VlmSections(
        vqa=summarize(vqa) if vqa else None,
        bon=summarize_bon(bon) if bon else None,
        trained_on=tuple(trained_on),
    )
    when = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    urls = _plots(store, folder, table, splits, vlm.bon)
    md = render_markdown(table, title, when, list(urls), vlm).encode()
    page = render_html(table, title, when, list(urls), vlm).encode()
    md_url, html_url = (
        _write(store, folder, "report.md", md),
        _write(store, folder, "report.html", page),
    )
    doc = {
        "title": title,
        "generated_at": when,
        "seeds": list(table.seeds),
        "benchmarks": list(table.benchmarks),
        "selections": table.selections,
        "headline_columns": [list(c) for c in table.headline_columns],
        "table": table.to_dict(),
        "paired": _paired_json(table),
        "score_splits": [s.summary() for s in splits],
        **_vlm_json(vlm, bon),
        "results": [r.row() for r in results],
        "files": {"markdown": md_url, "html": html_url, **urls},
    }
    # Written last: a report.json means every file it names is in place.
    body = json.dumps(doc, indent=2, allow_nan=False).encode()
    json_url = _write(store, folder, "report.json", body)
    return ReportPaths(store.url(folder), md_url, html_url, json_url, urls)
