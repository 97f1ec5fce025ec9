"""Dagster resources: the pipeline configuration, the artifact root and the lineage store."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import PipelineConfig, load_config
from rs_pipeline.core.lineage import LineageStore
from rs_pipeline.defs.training import TrainingLauncher

# Resource field -> (the standard AWS variable it is bound from, the s3fs keyword it feeds).
S3_CREDENTIALS = {
    "aws_access_key_id": ("AWS_ACCESS_KEY_ID", "key"),
    "aws_secret_access_key": ("AWS_SECRET_ACCESS_KEY", "secret"),
    "aws_session_token": ("AWS_SESSION_TOKEN", "token"),
}


class PipelineSettings(dg.ConfigurableResource):
    """The validated pipeline configuration: a preset name (`tiny`, `demo`) or a YAML path."""

    config: str = "demo"

    def load(self) -> PipelineConfig:
        """Parse and validate; a bad key fails here, before any work."""
        return load_config(self.config)


class ArtifactStoreResource(dg.ConfigurableResource):
    """The artifact root: a local folder or any fsspec URL such as `s3://bucket/prefix`.

    `storage_options` hold only non-secret settings (endpoint_url, client_kwargs, ...); the S3
    keys are bound through `dg.EnvVar`, so Dagster shows the variable's name, never its value.
    """

    root: str
    storage_options: dict[str, Any] = {}
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None

    def store(self) -> ArtifactStore:
        """A store over the root."""
        creds = {kw: getattr(self, f) for f, (_, kw) in S3_CREDENTIALS.items() if getattr(self, f)}
        return ArtifactStore(self.root, {**self.storage_options, **creds})


class LineageResource(dg.ConfigurableResource):
    """The DuckDB lineage database (a local file)."""

    path: str

    def store(self) -> LineageStore:
        """The lineage store."""
        return LineageStore(self.path)


class ScorerServiceResource(dg.ConfigurableResource):
    """Where best-of-N and RL get their scorer: empty `url`, the checkpoint score_model wrote,
    loaded in the step; else a running `rs-pipeline serve` (set it per deployment in the UI, or
    with `serving.url` in the config)."""

    url: str = ""

    def apply(self, cfg: PipelineConfig) -> PipelineConfig:
        """`cfg` with `serving.url` set to this resource's `url`, when it has one."""
        if not self.url:
            return cfg
        return cfg.model_copy(update={"serving": cfg.serving.model_copy(update={"url": self.url})})


def s3_credentials(root: str) -> dict[str, dg.EnvVar]:
    """`dg.EnvVar` bindings of the AWS variables set in the environment, for an `s3://` root.

    Unset ones stay unbound and botocore's own chain applies (config files, an instance or pod
    role); either way no secret is ever written into the configuration.
    """
    if not root.startswith(("s3://", "s3a://")):
        return {}
    return {f: dg.EnvVar(var) for f, (var, _) in S3_CREDENTIALS.items() if os.environ.get(var)}


def build_resources(config: str = "demo") -> dict[str, dg.ConfigurableResource]:
    """Resources for a config spec; the artifact root and lineage path come from it."""
    cfg = load_config(config)
    storage = cfg.storage
    return {
        "settings": PipelineSettings(config=config),
        "artifacts": ArtifactStoreResource(
            root=storage.root,
            storage_options=dict(storage.storage_options),
            **s3_credentials(storage.root),
        ),
        "lineage": LineageResource(path=storage.lineage_db),
        "scorer_service": ScorerServiceResource(url=cfg.serving.url or ""),
        # score_model, clip_checkpoints, vlm_checkpoints: torchrun / k8s per `training.launcher`
        "training_launcher": TrainingLauncher(),
    }
