import multiprocessing as mp

import pyarrow as pa
import pytest

from rs_pipeline.core.lineage import LineageStore, batch_summary
from rs_pipeline.core.records import (
    QUARANTINE_SCHEMA,
    SAMPLE_SCHEMA,
    SCORE_SCHEMA,
    QuarantineRow,
    to_table,
)


def quarantine_rows(batch: str, n: int, source: str = "s") -> pa.Table:
    rows = [QuarantineRow(batch, f"u{i}", source, "test", "corrupt", "", None) for i in range(n)]
    return to_table(rows, QUARANTINE_SCHEMA)


def write(store, batch, n, run_id="r1"):
    store.replace_partition(
        "quarantine",
        quarantine_rows(batch, n),
        asset="rs_images",
        partition_key=batch,
        run_id=run_id,
    )


def count(store, batch=None) -> int:
    sql, params = "SELECT count(*) AS n FROM quarantine", []
    if batch:
        sql, params = sql + " WHERE batch = ?", [batch]
    return store.query(sql, params).column("n")[0].as_py()


def test_rewriting_a_partition_replaces_its_rows(tmp_path):
    store = LineageStore(str(tmp_path / "l.duckdb"))
    write(store, "b1", 5)
    write(store, "b2", 2)
    write(store, "b1", 3, run_id="r2")
    assert count(store, "b1") == 3 and count(store, "b2") == 2
    runs = store.query("SELECT DISTINCT run_id FROM quarantine WHERE batch = 'b1'")
    assert runs.column("run_id").to_pylist() == ["r2"]  # which run wrote each row


def test_failed_write_leaves_previous_rows(tmp_path):
    store = LineageStore(str(tmp_path / "l.duckdb"))
    write(store, "b1", 4)
    bad = quarantine_rows("b1", 2).drop_columns(["reason"])
    with pytest.raises(KeyError):
        store.replace_partition(
            "quarantine", bad, asset="rs_images", partition_key="b1", run_id="r2"
        )
    assert count(store, "b1") == 4


def test_remote_lineage_path_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="local file path"):
        LineageStore("s3://bucket/lineage.duckdb")


def _hammer(path: str, batch: str, rounds: int) -> None:
    store = LineageStore(path)
    for i in range(rounds):
        write(store, batch, 10 + i % 3, run_id=f"{batch}-{i}")
        write(store, "shared", 7, run_id=f"{batch}-{i}")


def test_two_concurrent_writer_processes_neither_fail_nor_duplicate(tmp_path):
    path = str(tmp_path / "l.duckdb")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(path, b, 15)) for b in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    store = LineageStore(path)
    assert count(store, "a") == 10 + 14 % 3 and count(store, "b") == 10 + 14 % 3
    assert count(store, "shared") == 7  # last writer wins, never 14


def test_batch_summary_counts_by_source_class_and_reason(tmp_path):
    store = LineageStore(str(tmp_path / "l.duckdb"))
    write(store, "b1", 2)
    samples = pa.table(
        {name: [None, None] for name in SAMPLE_SCHEMA.names}
        | {
            "sample_id": ["x", "y"],
            "batch": ["b1", "b1"],
            "source": ["s", "t"],
            "label": ["forest", None],
            "source_uris": [["u"], ["v"]],
            "captions": [[], []],
        },
        schema=SAMPLE_SCHEMA,
    )
    store.replace_partition("samples", samples, asset="rs_images", partition_key="b1", run_id="r")
    s = batch_summary(store, "b1")
    assert s.by_source == [("s", 1, 2), ("t", 1, 0)]
    assert s.by_class == [("(unlabelled)", 1), ("forest", 1)]
    assert s.by_reason == [("corrupt", 2)]


def _scores(version: str, batch: str, n: int) -> pa.Table:
    ids = [f"s{i}" for i in range(n)]
    return pa.table(
        {
            "scorer_version": [version] * n,
            "batch": [batch] * n,
            "sample_id": ids,
            "caption_id": ids,
            "score": [float(i) for i in range(n)],
        },
        schema=SCORE_SCHEMA,
    )


def test_scores_written_under_the_old_key_order_are_rekeyed_once_and_then_replaced(tmp_path):
    store = LineageStore(str(tmp_path / "l.duckdb"))
    old_key = "clip-head-abc|b1"  # how older versions keyed pair_scores rows
    store.replace_partition(
        "scores",
        _scores("clip-head-abc", "b1", 4),
        asset="pair_scores",
        partition_key=old_key,
        run_id="r1",
    )
    with store.connect() as con:  # a database from before the migration existed
        con.execute("DELETE FROM lineage_meta")
    new_key = "b1|clip-head-abc"
    store.replace_partition(
        "scores",
        _scores("clip-head-abc", "b1", 3),
        asset="pair_scores",
        partition_key=new_key,
        run_id="r2",
    )
    rows = store.query("SELECT DISTINCT partition_key, run_id FROM scores").to_pylist()
    assert rows == [{"partition_key": new_key, "run_id": "r2"}]
    assert store.query("SELECT count(*) AS n FROM scores").column("n")[0].as_py() == 3
    writes = store.query("SELECT DISTINCT partition_key FROM writes WHERE table_name = 'scores'")
    assert writes.column("partition_key").to_pylist() == [new_key]


def score_rows(n: int, version: str = "v") -> pa.Table:
    rows = [{"scorer_version": version, "batch": "b", "sample_id": f"s{i % 7}",
             "caption_id": f"c{i}", "score": i / 3} for i in range(n)]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=SCORE_SCHEMA)


def test_a_partition_from_a_parquet_file_holds_the_same_rows_as_from_arrow(tmp_path):
    import pyarrow.parquet as pq

    rows = score_rows(50)
    pq.write_table(rows, tmp_path / "scores.parquet", row_group_size=8)
    by_arrow, by_file = (LineageStore(str(tmp_path / f"{n}.duckdb")) for n in ("a", "f"))
    key = {"asset": "pair_scores", "partition_key": "b|v", "run_id": "r1"}
    assert by_arrow.replace_partition("scores", rows, **key) == 50
    by_file.replace_partition_from_parquet("scores", str(tmp_path / "scores.parquet"), **key)
    n = by_file.replace_partition_from_parquet("scores", str(tmp_path / "scores.parquet"), **key)
    sql = "SELECT * FROM scores ORDER BY caption_id"
    assert n == 50 and by_file.query(sql) == by_arrow.query(sql)  # replaced, not added
    writes = "SELECT table_name, partition_key, run_id, row_count FROM writes"
    assert by_file.query(writes) == by_arrow.query(writes)


def test_a_parquet_file_missing_lineage_columns_is_refused_and_leaves_previous_rows(tmp_path):
    import pyarrow.parquet as pq

    store = LineageStore(str(tmp_path / "l.duckdb"))
    key = {"asset": "pair_scores", "partition_key": "b|v", "run_id": "r1"}
    store.replace_partition("scores", score_rows(4), **key)
    pq.write_table(score_rows(9).drop_columns(["score"]), tmp_path / "bad.parquet")
    with pytest.raises(KeyError, match="score"):
        store.replace_partition_from_parquet("scores", str(tmp_path / "bad.parquet"), **key)
    assert store.query("SELECT count(*) AS n FROM scores").column("n")[0].as_py() == 4
