"""SQL over the artifact root's Parquet tables: DuckDB reads them through the store's fsspec.

DuckDB cannot install `httpfs` offline, and a second set of S3 settings would be a second place
for credentials; registering the store's own filesystem gives DuckDB the same endpoint and
credentials every writer used. Local roots are read by DuckDB natively.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb
import pyarrow as pa

from rs_pipeline.core.artifacts import ArtifactStore


@contextlib.contextmanager
def connect(store: ArtifactStore) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection that reads files under the store's root."""
    con = duckdb.connect()
    try:
        if not store.is_local:
            con.register_filesystem(store.fs)
        yield con
    finally:
        con.close()


def parquet_url(store: ArtifactStore, pattern: str) -> str:
    """The path DuckDB reads for a glob relative to the root (protocol kept for remote roots)."""
    path = store.path(pattern)
    return path if store.is_local else store.fs.unstrip_protocol(path)


def query_parquet(
    store: ArtifactStore,
    pattern: str,
    sql: str,
    params: list | None = None,
    *,
    name: str = "t",
    hive_partitioning: bool = False,
) -> pa.Table:
    """Run `sql` over every Parquet file matching `pattern` under the root, seen as view `name`.

    `hive_partitioning` adds `key=value` folder names as columns; off by default because the
    pipeline's tables already carry their partition keys (e.g. `batch`) as columns.
    """
    if not store.fs.glob(store.path(pattern)):
        raise FileNotFoundError(
            f"no Parquet file matches {store.url(pattern)}: materialize the asset that writes it"
        )
    with connect(store) as con:
        rel = con.read_parquet(parquet_url(store, pattern), hive_partitioning=hive_partitioning)
        rel.create_view(name)
        return con.sql(sql, params=params or None).to_arrow_table()
