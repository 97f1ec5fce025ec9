"""The evaluation report: Markdown, HTML and JSON with PNG plots under one artifact folder.

The numbers come from `summary.summarize` (and the paired statistics from `paired`); this module
renders and writes them. Its names are re-exported so callers import the whole report API from
here.
"""

from __future__ import annotations

import html
import json
import posixpath
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fsspec.implementations.local import LocalFileSystem

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.evaluation.paired import (
    PAIRED_BASELINE,
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
    summarize,
)
from rs_pipeline.core.names import ALL_SELECTION

__all__ = [
    "Cell",
    "Column",
    "Counts",
    "PairedDiff",
    "PairedRow",
    "ReportPaths",
    "ReportRow",
    "ReportTable",
    "ScoreSplit",
    "markdown_table",
    "oracle_share",
    "paired",
    "paired_difference",
    "paired_markdown",
    "paired_records",
    "paired_rows",
    "summarize",
    "table_records",
    "write_report",
]

ACCURACY_PNG, HISTOGRAM_PNG = "accuracy_vs_ratio.png", "score_histograms.png"
PAIRED_HEADING = "Paired differences (per seed, mean ± SE; * beyond 2 SE)"
VS_ALL, VS_BASELINE = f"vs {ALL_SELECTION}", f"vs {PAIRED_BASELINE}@same %"


@dataclass(frozen=True)
class ReportPaths:
    """URLs of one written report."""

    folder: str
    markdown: str
    html: str
    json: str
    plots: dict[str, str] = field(hash=False)  # file name -> URL


def _cell_text(row: ReportRow, col: Column, digits: int) -> str:
    cell = row.cell(col)
    if cell is None:
        return "—"
    n = len(cell.values)
    short = f" (n={n})" if n < len(row.seeds) else ""  # a seed is missing for this cell
    return cell.format(digits) + short


def table_records(
    table: ReportTable, columns: Sequence[Column] | None = None, digits: int = 3
) -> list[dict[str, str | int]]:
    """One flat record per row (selection, seeds, one formatted cell per column)."""
    cols = tuple(columns or table.headline_columns)
    return [
        {
            "selection": r.selection,
            "seeds": len(r.seeds),
            **{c.label: _cell_text(r, c, digits) for c in cols},
        }
        for r in table.rows
    ]


def _counts_records(table: ReportTable) -> list[dict[str, str | int]]:
    def text(row: ReportRow, bench: str) -> str:
        k = next((k for k in row.counts if k.benchmark == bench), None)
        return "—" if k is None else f"{k.n_images} ({k.excluded} excluded)"

    return [
        {"selection": r.selection, **{b: text(r, b) for b in table.benchmarks}} for r in table.rows
    ]


def _markdown(records: list[dict[str, str | int]]) -> str:
    heads = list(records[0])
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(str(r[h]) for h in heads) + " |" for r in records]
    return "\n".join(lines)


def markdown_table(
    table: ReportTable, columns: Sequence[Column] | None = None, digits: int = 3
) -> str:
    """The headline table (or `columns`) as Markdown, cells like `0.612 ± 0.021`."""
    return _markdown(table_records(table, columns, digits))


def _diff_text(diff: PairedDiff | None, seeds: int, digits: int) -> str:
    if diff is None:
        return "—"
    short = f" (n={diff.n})" if diff.n < seeds else ""  # fewer seeds shared than the row ran
    return diff.format(digits) + short


def paired_records(table: ReportTable, digits: int = 3) -> list[dict[str, str | int]]:
    """One record per row: its paired difference to all@100 and to clipscore at its percent."""
    by_column = {c: paired_rows(table, c) for c in table.primary_columns}
    records: list[dict[str, str | int]] = []
    for i, row in enumerate(table.rows):
        record: dict[str, str | int] = {"selection": row.selection}
        for col, rows in by_column.items():
            seeds = len(row.seeds)
            record[f"{col.label} {VS_ALL}"] = _diff_text(rows[i].vs_all, seeds, digits)
            record[f"{col.label} {VS_BASELINE}"] = _diff_text(rows[i].vs_baseline, seeds, digits)
        records.append(record)
    return records


def paired_markdown(table: ReportTable, digits: int = 3) -> str:
    """The paired-differences section (title line, then a Markdown table) for a terminal."""
    return f"{PAIRED_HEADING}\n\n{_markdown(paired_records(table, digits))}"


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


def _sections(table: ReportTable, plots: Sequence[str]) -> list[tuple[str, list | str]]:
    """(heading, records or an image name) in reading order, shared by Markdown and HTML."""
    out: list[tuple[str, list | str]] = [("Headline", table_records(table))]
    out.append((PAIRED_HEADING, paired_records(table)))
    out.append(("Images evaluated (after decontamination)", _counts_records(table)))
    out += [(name.removesuffix(".png").replace("_", " ").capitalize(), name) for name in plots]
    out.append(("All metrics", table_records(table, table.columns)))
    return out


def render_markdown(table: ReportTable, title: str, generated_at: str, plots: Sequence[str]) -> str:
    """The whole report as Markdown; images by relative name."""
    seeds = ", ".join(map(str, table.seeds))
    parts = [f"# {title}", f"Generated {generated_at}; seeds {seeds}; mean ± sample std."]
    for heading, body in _sections(table, plots):
        content = f"![{heading}]({body})" if isinstance(body, str) else _markdown(body)
        parts += [f"## {heading}", content]
    return "\n\n".join(parts) + "\n"


def render_html(table: ReportTable, title: str, generated_at: str, plots: Sequence[str]) -> str:
    """The whole report as one HTML page (inline CSS); images by relative name."""
    seeds = ", ".join(map(str, table.seeds))
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Generated {html.escape(generated_at)}; seeds {seeds}; mean ± sample std.</p>",
    ]
    for heading, body in _sections(table, plots):
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


def write_report(
    store: ArtifactStore,
    folder: str,
    results: Sequence[EvalResult],
    splits: Sequence[ScoreSplit] = (),
    title: str = "Evaluation report",
    generated_at: datetime | None = None,
) -> ReportPaths:
    """Write report.md/.html/.json and the PNG plots under `folder`; re-writing replaces them."""
    # Imported here: matplotlib takes ~0.7 s to load; printing a table should not pay for it.
    from rs_pipeline.core.evaluation import plots

    table = summarize(results)
    when = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    urls = {ACCURACY_PNG: _write(store, folder, ACCURACY_PNG, plots.accuracy_vs_ratio(table))}
    if splits:
        urls[HISTOGRAM_PNG] = _write(store, folder, HISTOGRAM_PNG, plots.score_histograms(splits))
    elif store.fs.exists(store.path(folder, HISTOGRAM_PNG)):
        store.fs.rm(store.path(folder, HISTOGRAM_PNG))  # stale: this report has no splits
    md = render_markdown(table, title, when, list(urls)).encode()
    page = render_html(table, title, when, list(urls)).encode()
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
        "results": [r.row() for r in results],
        "files": {"markdown": md_url, "html": html_url, **urls},
    }
    # Written last: a report.json means every file it names is in place.
    body = json.dumps(doc, indent=2, allow_nan=False).encode()
    json_url = _write(store, folder, "report.json", body)
    return ReportPaths(store.url(folder), md_url, html_url, json_url, urls)
