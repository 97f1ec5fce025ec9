"""The lineage store: a DuckDB file with one table per record kind.

DuckDB allows one writer per file, and Dagster may run two materializations at once, so every
connection is taken under a cross-process file lock beside the database. Writes replace one
(asset, partition) in a single transaction: a retry never duplicates rows, and a crash
mid-write leaves the previous rows in place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock

from rs_pipeline.core.layout import SCORES_ASSET
from rs_pipeline.core.records import (
    BON_SCHEMA,
    CAPTION_SCHEMA,
    CHECKPOINT_SCHEMA,
    EVAL_SCHEMA,
    PAIR_SCHEMA,
    QUARANTINE_SCHEMA,
    SAMPLE_SCHEMA,
    SCORE_SCHEMA,
    SELECTION_SCHEMA,
    VLM_CHECKPOINT_SCHEMA,
)

# Every lineage row says which asset, partition and run wrote it.
_PROVENANCE = [("asset", pa.string()), ("partition_key", pa.string()), ("run_id", pa.string())]

TABLES: dict[str, pa.Schema] = {
    "samples": SAMPLE_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA,
    "captions": CAPTION_SCHEMA,
    "pairs": PAIR_SCHEMA,
    "scores": SCORE_SCHEMA,
    "selections": SELECTION_SCHEMA,
    "checkpoints": CHECKPOINT_SCHEMA,
    "eval_results": EVAL_SCHEMA,
    "vlm_checkpoints": VLM_CHECKPOINT_SCHEMA,
    "bon_results": BON_SCHEMA,
}

# DuckDB's cap while it inserts from a Parquet file: without one its buffer pool keeps what it
# wrote (up to 80% of RAM); with 64 MB a million score rows insert in about 2 s (measured).
INSERT_MEMORY_LIMIT = "64MB"

_META_DDL = "CREATE TABLE IF NOT EXISTS lineage_meta (name VARCHAR PRIMARY KEY, value VARCHAR)"

# Databases written before the scores partition key took Dagster's order (`batch|version`)
# hold `version|batch`; rewritten once, so a re-run replaces those rows instead of adding.
_SCORES_KEY_MIGRATION = "scores_partition_key=batch|scorer_version"
_MIGRATE_SCORES_KEYS = (
    f"""UPDATE writes SET partition_key = s.batch || '|' || s.scorer_version
    FROM (SELECT DISTINCT batch, scorer_version FROM scores) AS s
    WHERE writes.asset = '{SCORES_ASSET}' AND writes.table_name = 'scores'
      AND writes.partition_key = s.scorer_version || '|' || s.batch""",
    f"""UPDATE scores SET partition_key = batch || '|' || scorer_version
    WHERE asset = '{SCORES_ASSET}' AND partition_key = scorer_version || '|' || batch""",
)


def _add_new_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Columns a schema gained since the database was made (e.g. samples.notes), added as
    NULL for old rows: CREATE TABLE IF NOT EXISTS leaves an existing table as it was."""
    have = set(
        con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = 'main'"
        ).fetchall()
    )
    for name, schema in TABLES.items():
        for f in schema:
            if (name, f.name) not in have:
                con.execute(
                    f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {f.name} {_duck_type(f.type)}"
                )


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    """One-time rewrites of databases written by older versions, recorded in lineage_meta."""
    con.execute(_META_DDL)
    _add_new_columns(con)
    done = {r[0] for r in con.execute("SELECT name FROM lineage_meta").fetchall()}
    if _SCORES_KEY_MIGRATION not in done:
        con.execute("BEGIN TRANSACTION")
        for sql in _MIGRATE_SCORES_KEYS:
            con.execute(sql)
        con.execute("INSERT INTO lineage_meta VALUES (?, 'done')", [_SCORES_KEY_MIGRATION])
        con.execute("COMMIT")


_WRITES_DDL = """
CREATE TABLE IF NOT EXISTS writes (
    table_name VARCHAR, asset VARCHAR, partition_key VARCHAR, run_id VARCHAR,
    row_count BIGINT, written_at TIMESTAMP
)"""


def _schema_of(table: str) -> pa.Schema:
    if table not in TABLES:
        raise KeyError(f"unknown lineage table {table!r}; tables: {sorted(TABLES)}")
    return TABLES[table]


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return f"{_duck_type(t.value_type)}[]"
    return {
        pa.string(): "VARCHAR",
        pa.int32(): "INTEGER",
        pa.int64(): "BIGINT",
        pa.float64(): "DOUBLE",
        pa.float32(): "FLOAT",
        pa.bool_(): "BOOLEAN",
        pa.binary(): "BLOB",
    }[t]


def _ddl(name: str, schema: pa.Schema) -> str:
    cols = [f"{f.name} {_duck_type(f.type)}" for f in schema] + [
        f"{n} {_duck_type(t)}" for n, t in _PROVENANCE
    ]
    return f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(cols)})"


def _tagged(rows, schema: pa.Schema, asset: str, partition_key: str, run_id: str):
    """`rows` in `schema`'s column order plus the provenance columns, batch by batch."""
    missing = sorted(set(schema.names) - set(rows.schema.names))
    if missing:
        raise KeyError(f"rows lack lineage columns {missing}")
    values = {"asset": asset, "partition_key": partition_key, "run_id": run_id}
    out_schema = pa.schema(list(schema) + [pa.field(n, t) for n, t in _PROVENANCE])

    def batches():
        source = rows.to_batches() if isinstance(rows, pa.Table) else rows
        for rb in source:
            cols = [rb.column(name) for name in schema.names]
            cols += [pa.array([values[n]] * rb.num_rows, type=t) for n, t in _PROVENANCE]
            yield pa.RecordBatch.from_arrays(cols, schema=out_schema)

    return pa.RecordBatchReader.from_batches(out_schema, batches())


_Insert = Callable[[duckdb.DuckDBPyConnection], None]  # inserts one table's new rows


def _arrow_insert(table: str, rows, *, asset: str, partition_key: str, run_id: str) -> _Insert:
    """An insert of Arrow `rows` (a Table or RecordBatchReader) into `table`, tagged."""
    tagged = _tagged(rows, _schema_of(table), asset, partition_key, run_id)

    def insert(con: duckdb.DuckDBPyConnection) -> None:
        con.register("incoming", tagged)
        # By name: a column added by migration sits after the provenance columns.
        cols = ", ".join(tagged.schema.names)
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM incoming")
        con.unregister("incoming")

    return insert


@dataclass
class LineageStore:
    """One DuckDB lineage database; safe for concurrent writers across processes."""

    path: str
    lock_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if "://" in self.path:
            raise ValueError(
                f"storage.lineage_db must be a local file path, got {self.path!r}; "
                "DuckDB locks its file and needs a local disk (artifacts may stay on s3://)"
            )
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(f"{self.path}.lock", timeout=self.lock_timeout_s)

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection held under the cross-process lock, with every table created."""
        with self._lock:
            con = duckdb.connect(self.path)
            try:
                for name, schema in TABLES.items():
                    con.execute(_ddl(name, schema))
                con.execute(_WRITES_DDL)
                _migrate(con)
                yield con
            finally:
                con.close()

    def replace_partition(
        self,
        table: str,
        rows: pa.Table | pa.RecordBatchReader,
        *,
        asset: str,
        partition_key: str,
        run_id: str,
    ) -> int:
        """Delete this (asset, partition)'s rows of `table`, insert `rows`; one transaction.

        `rows` may be a RecordBatchReader: DuckDB then streams it. For many rows already in a
        Parquet file, `replace_partition_from_parquet` holds less memory.
        """
        key = {"asset": asset, "partition_key": partition_key, "run_id": run_id}
        return self.replace_partitions({table: rows}, **key)[table]

    def replace_partitions(
        self,
        tables: Mapping[str, pa.Table | pa.RecordBatchReader],
        *,
        asset: str,
        partition_key: str,
        run_id: str,
    ) -> dict[str, int]:
        """`replace_partition` for several tables (name -> rows) in one transaction: all are
        replaced or none; one connection, so a stage writing two tables opens the file once."""
        key = {"asset": asset, "partition_key": partition_key, "run_id": run_id}
        inserts = {name: _arrow_insert(name, rows, **key) for name, rows in tables.items()}
        return self._replace(inserts, **key)

    def replace_partition_from_parquet(
        self, table: str, path: str, *, asset: str, partition_key: str, run_id: str
    ) -> int:
        """`replace_partition` with the rows of a local Parquet file holding `table`'s columns.

        DuckDB reads the file itself under a memory cap (`INSERT_MEMORY_LIMIT`) instead of
        buffering an Arrow stream, so a million score rows cost tens of MiB, not hundreds.
        """
        schema = _schema_of(table)
        missing = sorted(set(schema.names) - set(pq.read_schema(path).names))
        if missing:
            raise KeyError(f"{path} lacks lineage columns {missing}")
        cols = ", ".join([*schema.names, *(n for n, _ in _PROVENANCE)])
        picked = ", ".join(schema.names)

        def insert(con: duckdb.DuckDBPyConnection) -> None:
            con.execute(f"SET memory_limit = '{INSERT_MEMORY_LIMIT}'")
            try:
                con.execute(
                    f"INSERT INTO {table} ({cols}) SELECT {picked}, ?, ?, ? FROM read_parquet(?)",
                    [asset, partition_key, run_id, path],
                )
            finally:
                con.execute("RESET memory_limit")

        key = {"asset": asset, "partition_key": partition_key, "run_id": run_id}
        return self._replace({table: insert}, **key)[table]

    def _replace(
        self, inserts: Mapping[str, _Insert], *, asset: str, partition_key: str, run_id: str
    ) -> dict[str, int]:
        """For each table: delete the partition's rows, `insert(con)` the new ones, record the
        write; one transaction for all, rolled back on any failure."""
        counts = {}
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                where = "asset = ? AND partition_key = ?"
                for table, insert in inserts.items():
                    con.execute(f"DELETE FROM {table} WHERE {where}", [asset, partition_key])
                    insert(con)
                    counts[table] = n = con.execute(
                        f"SELECT count(*) FROM {table} WHERE {where}", [asset, partition_key]
                    ).fetchone()[0]
                    con.execute(
                        f"DELETE FROM writes WHERE table_name = ? AND {where}",
                        [table, asset, partition_key],
                    )
                    con.execute(
                        "INSERT INTO writes VALUES (?, ?, ?, ?, ?, ?)",
                        [table, asset, partition_key, run_id, n, dt.datetime.now(dt.UTC)],
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return counts

    def query(self, sql: str, params: list | None = None) -> pa.Table:
        """Run a read query and return an Arrow table."""
        with self.connect() as con:
            return con.sql(sql, params=params or None).to_arrow_table()


@dataclass(frozen=True)
class BatchSummary:
    """Counts of one batch by source, by class and by quarantine reason."""

    batch: str
    by_source: list[tuple[str, int, int]]  # (source, admitted, quarantined)
    by_class: list[tuple[str, int]]
    by_reason: list[tuple[str, int]]
    # Inputs merged into an already-admitted image. Ingest keeps one row per image and
    # appends each duplicate's URI to its `source_uris`, so duplicates = sum(len - 1).
    duplicates: int = 0

    @property
    def unique(self) -> int:
        """Admitted images (one `samples` row each)."""
        return sum(admitted for _, admitted, _ in self.by_source)

    @property
    def quarantined(self) -> int:
        """Inputs rejected with a reason."""
        return sum(q for _, _, q in self.by_source)

    @property
    def inputs(self) -> int:
        """Every input of the batch: inputs = unique + duplicates + quarantined."""
        return self.unique + self.duplicates + self.quarantined


def batch_summary(store: LineageStore, batch: str) -> BatchSummary:
    """What the lineage store knows about one ingest batch, reconciled to its inputs.

    Duplicates are not rows of their own: they are read from each sample's `source_uris`
    (the first URI is the admitted input, every further one a merged exact duplicate).
    """
    with store.connect() as con:
        by_source = con.execute(
            """
            SELECT source, sum(admitted)::BIGINT, sum(quarantined)::BIGINT FROM (
              SELECT source, 1 AS admitted, 0 AS quarantined FROM samples WHERE batch = ?
              UNION ALL
              SELECT source, 0, 1 FROM quarantine WHERE batch = ?
            ) GROUP BY source ORDER BY source""",
            [batch, batch],
        ).fetchall()
        by_class = con.execute(
            "SELECT coalesce(label, '(unlabelled)') AS c, count(*) FROM samples "
            "WHERE batch = ? GROUP BY c ORDER BY c",
            [batch],
        ).fetchall()
        by_reason = con.execute(
            "SELECT reason, count(*) FROM quarantine WHERE batch = ? GROUP BY reason ORDER BY 1",
            [batch],
        ).fetchall()
        (duplicates,) = con.execute(
            "SELECT coalesce(sum(greatest(len(source_uris) - 1, 0)), 0)::BIGINT FROM samples "
            "WHERE batch = ?",
            [batch],
        ).fetchone()
    return BatchSummary(batch, by_source, by_class, by_reason, duplicates)
