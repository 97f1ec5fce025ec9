"""The artifact root: one fsspec URL (a local folder or `s3://...`) holding every table."""

from __future__ import annotations

import contextlib
import posixpath
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from fsspec.utils import get_protocol

# botocore waits 60 s to connect and retries; an unreachable endpoint then holds a step for
# minutes per call. Bounded, and overridable through `storage_options.config_kwargs`.
S3_TIMEOUTS = {"connect_timeout": 10, "read_timeout": 60}


def with_s3_defaults(url: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """`storage_options` for `url`, with bounded S3 timeouts unless the user set them."""
    options = dict(storage_options or {})
    if url.startswith(("s3://", "s3a://")):
        config = dict(options.get("config_kwargs") or {})
        for key, value in S3_TIMEOUTS.items():
            config.setdefault(key, value)
        options["config_kwargs"] = config
    return options


class StoreUnreachable(ConnectionError):
    """The artifact root's server did not answer: it is down, or the endpoint is wrong."""


def _connection_errors() -> tuple[type[BaseException], ...]:
    """What fsspec and botocore raise when no answer came (refused, timed out, dropped)."""
    from fsspec.exceptions import FSTimeoutError

    try:
        from botocore.exceptions import ConnectionError as NoConnection
        from botocore.exceptions import HTTPClientError
    except ImportError:  # no s3fs installed: only local and other fsspec roots
        return (FSTimeoutError,)
    return (FSTimeoutError, NoConnection, HTTPClientError)


@contextlib.contextmanager
def reaching(root: str, doing: str) -> Iterator[None]:
    """Turn "no answer from the server" into StoreUnreachable naming the root and the fix."""
    try:
        yield
    except _connection_errors() as err:
        raise StoreUnreachable(
            f"the artifact store {root} did not answer while {doing} ({err}): check that its "
            "server is up and reachable and that storage.storage_options.endpoint_url (or "
            "AWS_ENDPOINT_URL) names it, then re-run the step; an interrupted write is not "
            "published"
        ) from err


def drop_orphans(fs, path: str) -> list[str]:
    """Delete `<path>.tmp-*` siblings left by writers of `path` that died (kill -9, OOM).

    Called as a local write of `path` starts, before its own temp file exists. Safe because a
    file has one writer at a time: each table belongs to one partition of one asset, and
    Dagster runs a partition's step once at a time (a re-run starts after the dead run), so a
    temp sibling that exists now belongs to a writer that is gone. Returns what was deleted.
    """
    folder, name = posixpath.split(path)
    prefix = f"{name}.tmp-"
    orphans = [p for p in fs.ls(folder, detail=False) if posixpath.basename(p).startswith(prefix)]
    for orphan in orphans:
        fs.rm(orphan)
    return orphans


@dataclass
class ArtifactStore:
    """Reads and writes Parquet tables under one root URL.

    `storage_options` go to the fsspec filesystem (e.g. s3fs's `endpoint_url`); they may carry
    credentials bound from the environment, so they never appear in the repr.
    """

    root: str
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        options = with_s3_defaults(self.root, self.storage_options)
        if get_protocol(self.root) != "file":
            # Other processes (parallel runs, pods) write under the same root; a cached
            # listing would hide their new partitions from `glob`.
            options.setdefault("use_listings_cache", False)
        self.fs, self._root_path = url_to_fs(self.root, **options)
        self.root = self.root.rstrip("/")

    @property
    def is_local(self) -> bool:
        """Whether the root is a local folder (atomic renames; DuckDB reads it natively)."""
        return isinstance(self.fs, LocalFileSystem)

    def url(self, *parts: str) -> str:
        """Full URL of a path under the root."""
        return posixpath.join(self.root, *parts)

    def path(self, *parts: str) -> str:
        """Filesystem path (no protocol) of a path under the root, for `self.fs` calls."""
        return posixpath.join(self._root_path.rstrip("/"), *parts)

    def exists(self, *parts: str) -> bool:
        """Whether a path under the root exists."""
        with reaching(self.root, f"looking for {posixpath.join(*parts)}"):
            return self.fs.exists(self.path(*parts))

    def write_table(self, table: pa.Table, *parts: str) -> str:
        """Write a Parquet table atomically where the filesystem allows; returns its URL."""
        path = self.path(*parts)
        with reaching(self.root, f"writing {self.url(*parts)}"):
            self._write(table, path)
        return self.url(*parts)

    def _write(self, table: pa.Table, path: str) -> None:
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        if self.is_local:
            # Write beside, then rename: a crash never leaves a half-written manifest.
            drop_orphans(self.fs, path)
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            with self.fs.open(tmp, "wb") as fh:
                pq.write_table(table, fh)
            self.fs.mv(tmp, path)
        else:
            # Object stores publish an object only once its upload completes.
            with self.fs.open(path, "wb") as fh:
                pq.write_table(table, fh)

    def read_table(self, *parts: str) -> pa.Table:
        """Read a Parquet table under the root."""
        path = self.path(*parts)
        if not self.exists(*parts):
            raise FileNotFoundError(
                f"{self.url(*parts)} does not exist: materialize the asset that writes it first"
            )
        with reaching(self.root, f"reading {self.url(*parts)}"), self.fs.open(path, "rb") as fh:
            return pq.read_table(fh)


def store_of(cfg: Any) -> ArtifactStore:
    """The store of a `PipelineConfig`: `storage.root` with its `storage.storage_options`.

    Build the store from a configuration only through here, so an `s3://` root's endpoint (and
    any other fsspec option) is never dropped on the way.
    """
    return ArtifactStore(cfg.storage.root, cfg.storage.storage_options)


class TableWriter:
    """Streams rows into one Parquet file in fixed-size row groups (bounded memory).

    Local files are written beside the target and renamed on close, so readers never see a
    half-written table; object stores publish the object only when the upload completes.
    """

    def __init__(self, store: ArtifactStore, schema: pa.Schema, *parts: str, chunk: int = 512):
        self.store, self.schema, self.chunk = store, schema, chunk
        self.url = store.url(*parts)
        self._path = store.path(*parts)
        self._tmp = f"{self._path}.tmp-{uuid.uuid4().hex}" if store.is_local else None
        store.fs.makedirs(posixpath.dirname(self._path), exist_ok=True)
        if self._tmp is not None:
            drop_orphans(store.fs, self._path)
        self._fh = store.fs.open(self._tmp or self._path, "wb")
        # Binary columns hold encoded images: a dictionary over them never pays, and trying
        # one hashes every blob (a third of the cost of writing an ingest batch's images).
        dictionary = [f.name for f in schema if not pa.types.is_binary(f.type)]
        self._writer = pq.ParquetWriter(self._fh, schema, use_dictionary=dictionary)
        self._rows: list[dict] = []
        self.num_rows = 0

    def write(self, row: dict) -> None:
        """Add one row; flushed as a row group every `chunk` rows."""
        self._rows.append(row)
        if len(self._rows) >= self.chunk:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            with reaching(self.store.root, f"writing {self.url}"):  # a full part uploads here
                self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
            self.num_rows += len(self._rows)
            self._rows = []

    def close(self) -> str:
        """Finish and publish the file; returns its URL."""
        self._flush()
        with reaching(self.store.root, f"writing {self.url}"):
            self._writer.close()
            self._fh.close()
            if self._tmp is not None:
                self.store.fs.mv(self._tmp, self._path)
        return self.url

    def abort(self) -> None:
        """Drop a file that will not be completed; nothing is published."""
        with reaching(self.store.root, f"dropping the unfinished {self.url}"):
            self._writer.close()
            self._fh.close()
            target = self._tmp or self._path
            if self.store.fs.exists(target):
                self.store.fs.rm(target)
