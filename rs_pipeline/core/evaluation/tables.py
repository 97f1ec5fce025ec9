"""Report tables as flat records: one mapping per row, every cell a formatted string.

Shared by the Markdown and HTML renderers, the Dagster metadata and the CLI, so a number reads
the same wherever it is shown. Cells read `mean ± std` over seeds; a cell with fewer seeds than
its row says `(n=k)`, a missing one shows a dash.
"""

from __future__ import annotations

from collections.abc import Sequence

from rs_pipeline.core.evaluation.bon_summary import POOLED, BonTable
from rs_pipeline.core.evaluation.paired import PAIRED_BASELINE, PairedDiff, paired_rows
from rs_pipeline.core.evaluation.summary import Column, ReportRow, ReportTable, TrainedOn
from rs_pipeline.core.names import ALL_SELECTION

PAIRED_HEADING = "Paired differences (per seed, mean ± SE; * beyond 2 SE)"
VS_ALL, VS_BASELINE = f"vs {ALL_SELECTION}", f"vs {PAIRED_BASELINE}@same %"
Records = list[dict[str, str | int]]


def _cell_text(row: ReportRow, col: Column, digits: int) -> str:
    cell = row.cell(col)
    if cell is None:
        return "—"
    n = len(cell.values)
    short = f" (n={n})" if n < len(row.seeds) else ""  # a seed is missing for this cell
    return cell.format(digits) + short


def table_records(
    table: ReportTable, columns: Sequence[Column] | None = None, digits: int = 3
) -> Records:
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


def counts_records(table: ReportTable) -> Records:
    def text(row: ReportRow, bench: str) -> str:
        k = next((k for k in row.counts if k.benchmark == bench), None)
        return "—" if k is None else f"{k.n_images} ({k.excluded} excluded)"

    return [
        {"selection": r.selection, **{b: text(r, b) for b in table.benchmarks}} for r in table.rows
    ]


def _md_cell(value: object) -> str:
    # A caption may hold `|` or a line break: either would end the cell or the row.
    return str(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown_records(records: Records) -> str:
    """Records as a Markdown table, headed by the first record's keys."""
    heads = list(records[0])
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(_md_cell(r[h]) for h in heads) + " |" for r in records]
    return "\n".join(lines)


def markdown_table(
    table: ReportTable, columns: Sequence[Column] | None = None, digits: int = 3
) -> str:
    """The headline table (or `columns`) as Markdown, cells like `0.612 ± 0.021`."""
    return markdown_records(table_records(table, columns, digits))


def _diff_text(diff: PairedDiff | None, seeds: int, digits: int) -> str:
    if diff is None:
        return "—"
    short = f" (n={diff.n})" if diff.n < seeds else ""  # fewer seeds shared than the row ran
    return diff.format(digits) + short


def paired_records(table: ReportTable, digits: int = 3) -> Records:
    """One record per row: its paired difference to all@100 and to clipscore at its percent."""
    by_column = {c: paired_rows(table, c) for c in table.primary_columns}
    records: Records = []
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
    return f"{PAIRED_HEADING}\n\n{markdown_records(paired_records(table, digits))}"


def trained_on_records(trained: Sequence[TrainedOn]) -> Records:
    """One record per (model family, selection): the seeds it was fine-tuned with."""
    return [
        {"family": t.family, "selection": t.selection, "seeds": ", ".join(map(str, t.seeds))}
        for t in trained
    ]


def bon_records(table: BonTable, digits: int = 3) -> Records:
    """One record per line: accuracy at each N; pooled lines only when they pool something."""
    # Over one selection and scorer the pooled lines repeat its own lines number for number.
    pool = len({(x.selection, x.scorer_versions) for x in table.lines if x.selection != POOLED}) > 1
    records: Records = []
    for line in table.lines:
        if line.selection == POOLED and not pool:
            continue
        record: dict[str, str | int] = {
            "benchmark": line.benchmark,
            "selection": line.selection,
            "strategy": line.strategy,
            "scorer_version": ", ".join(line.scorer_versions),  # of the run, as recorded
            "checkpoints": max(len(c.values) for c in line.cells),  # selection x seed
            "questions": line.questions,
        }
        for n in table.ns:
            cell = line.cell(n)
            record[f"N={n}"] = "—" if cell is None else cell.format(digits)
        records.append(record)
    return records
