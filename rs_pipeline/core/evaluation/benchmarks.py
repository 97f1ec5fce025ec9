"""Evaluation sets given by path: an ImageFolder for zero-shot classification, a caption file
(CSV/JSONL: an image path and one or more captions) for retrieval, or held-out SynthRS tiles.

Every image carries its `sample_id` (sha256 of the file bytes, as ingest computes it), so an
evaluation image that training saw can be excluded and counted (`Benchmark.without`).
"""

from __future__ import annotations

import hashlib
import io
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from fsspec.core import url_to_fs
from PIL import Image

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import BenchmarkConfig, PipelineConfig
from rs_pipeline.core.evaluation.metrics import class_prompts
from rs_pipeline.core.names import ALL_SELECTION
from rs_pipeline.core.progress import Progress
from rs_pipeline.core.selection.manifest import load_selection

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


@dataclass(frozen=True)
class Benchmark:
    """Images with labels (classification) and/or texts (retrieval); ids for decontamination."""

    name: str
    images: list[Image.Image]
    sample_ids: list[str]
    classes: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)  # index into classes, per image
    prompts: list[list[str]] = field(default_factory=list)  # per class
    texts: list[str] = field(default_factory=list)
    text_to_image: list[int] = field(default_factory=list)  # owner image of each text

    @property
    def classification(self) -> bool:
        return bool(self.classes)

    @property
    def retrieval(self) -> bool:
        return bool(self.texts)

    def without(self, exclude: set[str]) -> tuple[Benchmark, int]:
        """The benchmark minus images whose sample_id is in `exclude`, and how many went."""
        keep = [i for i, sid in enumerate(self.sample_ids) if sid not in exclude]
        if len(keep) == len(self.sample_ids):
            return self, 0
        new_index = {old: new for new, old in enumerate(keep)}
        texts = zip(self.texts, self.text_to_image, strict=True)
        owned = [(t, new_index[o]) for t, o in texts if o in new_index]
        return replace(
            self,
            images=[self.images[i] for i in keep],
            sample_ids=[self.sample_ids[i] for i in keep],
            labels=[self.labels[i] for i in keep] if self.labels else [],
            texts=[t for t, _ in owned],
            text_to_image=[o for _, o in owned],
        ), len(self.sample_ids) - len(keep)


def _decode(data: bytes) -> tuple[Image.Image, str]:
    return Image.open(io.BytesIO(data)).convert("RGB"), hashlib.sha256(data).hexdigest()


def _is_class_image(path: str, root: str) -> bool:
    """An image directly inside a class folder: `<root>/<class>/<image>`."""
    depth = len(posixpath.relpath(path, root).split("/"))
    return path.lower().endswith(IMAGE_EXTENSIONS) and depth == 2


Log = Callable[[str], None] | None


def _loading(cfg: BenchmarkConfig, total: int, log: Log) -> Progress:
    return Progress(total, log, what=f"{cfg.name}: images loaded")


def _imagefolder(cfg: BenchmarkConfig, log: Log = None) -> Benchmark:
    fs, root = url_to_fs(cfg.path, **cfg.storage_options)
    if not fs.isdir(root):
        raise FileNotFoundError(
            f"benchmark {cfg.name!r}: {cfg.path} is not a folder; set evaluation.benchmarks[].path "
            "to an ImageFolder (<root>/<class>/<image>)"
        )
    files = sorted(p for p in fs.find(root) if _is_class_image(p, root))
    files = files[: cfg.max_images] if cfg.max_images else files
    classes = sorted({posixpath.relpath(p, root).split("/")[0] for p in files})
    if len(classes) < 2:
        raise ValueError(f"benchmark {cfg.name!r}: {cfg.path} needs >= 2 class folders with images")
    images, ids, labels = [], [], []
    progress = _loading(cfg, len(files), log)
    for path in files:
        image, sid = _decode(fs.cat_file(path))
        images.append(image)
        ids.append(sid)
        labels.append(classes.index(posixpath.relpath(path, root).split("/")[0]))
        progress.step()
    return Benchmark(
        cfg.name, images, ids, classes, labels, class_prompts(classes, cfg.class_names)
    )


def _caption_file(cfg: BenchmarkConfig, log: Log = None) -> Benchmark:
    from rs_pipeline.core.sources.manifest import parse_captions, read_manifest

    fs, path = url_to_fs(cfg.path, **cfg.storage_options)
    table = read_manifest(fs, path)
    columns = table.column_names
    image_col = next((c for c in ("image", "path", "filename") if c in columns), None)
    text_col = next((c for c in ("captions", "caption", "sentence", "text") if c in columns), None)
    if image_col is None or text_col is None:
        raise ValueError(
            f"benchmark {cfg.name!r}: {cfg.path} needs an image column (image|path|filename) and "
            f"a caption column (captions|caption|sentence|text); found {table.column_names}"
        )
    root = cfg.image_root or posixpath.dirname(path)
    by_image: dict[str, list[str]] = {}
    for row in table.select([image_col, text_col]).to_pylist():
        by_image.setdefault(str(row[image_col]), []).extend(parse_captions(row[text_col]))
    keys = sorted(by_image)[: cfg.max_images] if cfg.max_images else sorted(by_image)
    images, ids, texts, owner = [], [], [], []
    progress = _loading(cfg, len(keys), log)
    for key in keys:
        image, sid = _decode(fs.cat_file(posixpath.join(root, key)))
        for text in by_image[key]:
            texts.append(text)
            owner.append(len(images))
        images.append(image)
        ids.append(sid)
        progress.step()
    return Benchmark(cfg.name, images, ids, texts=texts, text_to_image=owner)


def _synthrs(cfg: BenchmarkConfig, log: Log = None) -> Benchmark:
    """Tiles from a seed no training source uses: labelled, with two faithful captions each."""
    from rs_pipeline.core.captions.templates import faithful_caption
    from rs_pipeline.core.sources.synthrs import SynthRSSource, TileAnnotation

    source = SynthRSSource(cfg.name, cfg.count, cfg.size, cfg.seed)
    classes = sorted(source.classes)
    images, ids, labels, texts, owner = [], [], [], [], []
    progress = _loading(cfg, cfg.count, log)
    for i, item in enumerate(source.iter_items("heldout")):
        image, sid = _decode(item.data)
        annotation = TileAnnotation.from_json(item.annotation_json)
        for family in (i % 3, 3 + i % 2):  # two wordings per tile
            texts.append(faithful_caption(annotation, family))
            owner.append(len(images))
        images.append(image)
        ids.append(sid)
        labels.append(classes.index(item.label))
        progress.step()
    prompts = class_prompts(classes, cfg.class_names)
    return Benchmark(cfg.name, images, ids, classes, labels, prompts, texts, owner)


def load_benchmark(cfg: BenchmarkConfig, log: Log = None) -> Benchmark:
    """Read one configured benchmark into memory (progress lines through `log`)."""
    loaders = {"classification": _imagefolder, "retrieval": _caption_file, "synthrs": _synthrs}
    return loaders[cfg.kind](cfg, log)


def decontaminated_benchmarks(
    cfg: PipelineConfig, store: ArtifactStore, log: Log = None
) -> tuple[list[Benchmark], dict[str, int]]:
    """Configured benchmarks without images the training pool holds (the same for every
    selection and model family, so all are scored on identical images), and the count
    removed from each benchmark. Loading progress goes through `log`."""
    benches = [load_benchmark(b, log) for b in cfg.evaluation.benchmarks]
    if not cfg.evaluation.decontaminate:
        return benches, {b.name: 0 for b in benches}
    pool = set(load_selection(store, ALL_SELECTION).table.column("sample_id").to_pylist())
    cleaned = [b.without(pool) for b in benches]
    return [b for b, _ in cleaned], {b.name: n for b, n in cleaned}
