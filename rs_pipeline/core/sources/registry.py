"""Builds the configured sources by their explicit `kind`."""

from __future__ import annotations

from rs_pipeline.core.config import (
    ImageFolderSourceConfig,
    ManifestSourceConfig,
    Sentinel2SourceConfig,
    SourceConfig,
    SynthRSSourceConfig,
)
from rs_pipeline.core.sources.base import Source
from rs_pipeline.core.sources.imagefolder import ImageFolderSource
from rs_pipeline.core.sources.manifest import ManifestSource
from rs_pipeline.core.sources.sentinel2 import Sentinel2Source
from rs_pipeline.core.sources.synthrs import SynthRSSource


def build_source(cfg: SourceConfig) -> Source:
    """The source object for one `sources[]` entry."""
    match cfg:
        case SynthRSSourceConfig():
            return SynthRSSource(cfg.name, cfg.count, cfg.size, cfg.seed, cfg.classes)
        case Sentinel2SourceConfig():
            return Sentinel2Source(
                cfg.name, cfg.chip_size, cfg.max_chips, tuple(cfg.stretch_percentiles)
            )
        case ImageFolderSourceConfig():
            return ImageFolderSource(cfg.name, cfg.path, cfg.extensions, cfg.storage_options)
        case ManifestSourceConfig():
            return ManifestSource(
                cfg.name, cfg.path, cfg.root, cfg.storage_options, columns=cfg.columns
            )
    raise TypeError(f"no source for config of type {type(cfg).__name__}")
