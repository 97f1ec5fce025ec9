"""Dagster resources: the pipeline configuration, the artifact root and the lineage store."""

from __future__ import annotations

import dagster as dg

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import PipelineConfig, load_config
from rs_pipeline.core.lineage import LineageStore


class PipelineSettings(dg.ConfigurableResource):
    """The validated pipeline configuration: a preset name (`tiny`, `demo`) or a YAML path."""

    config: str = "demo"

    def load(self) -> PipelineConfig:
        """Parse and validate; a bad key fails here, before any work."""
        return load_config(self.config)


class ArtifactStoreResource(dg.ConfigurableResource):
    """The artifact root: a local folder or any fsspec URL such as `s3://bucket/prefix`."""

    root: str

    def store(self) -> ArtifactStore:
        """A store over the root."""
        return ArtifactStore(self.root)


class LineageResource(dg.ConfigurableResource):
    """The DuckDB lineage database (a local file)."""

    path: str

    def store(self) -> LineageStore:
        """The lineage store."""
        return LineageStore(self.path)


def build_resources(config: str = "demo") -> dict[str, dg.ConfigurableResource]:
    """Resources for a config spec; the artifact root and lineage path come from it."""
    cfg = load_config(config)
    return {
        "settings": PipelineSettings(config=config),
        "artifacts": ArtifactStoreResource(root=cfg.storage.root),
        "lineage": LineageResource(path=cfg.storage.lineage_db),
    }
