"""Retrieval captioner: real human captions from a caption corpus, matched by scene class.

A corpus file is CSV or JSONL with a scene label and captions: the RSICD/RSITMD layout
(`label`, `sentence` = a Python-literal list of captions), UCM-captions (class from the file
number), or a plain `label` + `caption` file. Corpus labels are normalised (lower case, no
spaces or underscores) and matched to your classes through `label_map`, else built-in aliases.
"""

from __future__ import annotations

import ast
import csv
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from fsspec.core import url_to_fs

from rs_pipeline.core.captions.base import Candidate, SampleView
from rs_pipeline.core.seeds import seed_from

VERSION = "v1"

# Corpus labels (normalised) that describe each of our class names: SynthRS and RSSCN7.
BUILTIN_ALIASES: dict[str, tuple[str, ...]] = {
    "farmland": ("farmland", "agricultural"),
    "forest": ("forest",),
    "lake": ("pond",),
    "river": ("river",),
    "residential": ("denseresidential", "mediumresidential", "sparseresidential"),
    "industrial": ("industrial",),
    "airport": ("airport", "runway"),
    "harbor": ("port", "harbor"),
    "parking_lot": ("parking", "parkinglot"),
    "desert": ("desert", "bareland"),
    "beach": ("beach",),
    "storage_tanks": ("storagetanks",),
    # RSSCN7
    "grass": ("meadow",),
    "field": ("farmland", "agricultural"),
    "industry": ("industrial",),
    "river_lake": ("river", "pond"),
    "parking": ("parking", "parkinglot"),
}

# UC Merced caption file `n.tif` belongs to class index (n-1)//100 of this sorted list.
UCM_CLASSES = (
    "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral",
    "denseresidential", "forest", "freeway", "golfcourse", "harbor", "intersection",
    "mediumresidential", "mobilehomepark", "overpass", "parkinglot", "river", "runway",
    "sparseresidential", "storagetanks", "tenniscourt",
)  # fmt: skip


def normalise_label(label: str) -> str:
    """`Dense Residential` and `dense_residential` are the same corpus label."""
    return "".join(ch for ch in label.lower() if ch.isalnum())


def _sentences(value: str) -> list[str]:
    text = value.strip()
    if text.startswith("["):
        return [str(s).strip() for s in ast.literal_eval(text) if str(s).strip()]
    return [text] if text else []


def _rows(path: str) -> Iterable[dict]:
    fs, p = url_to_fs(path)
    with fs.open(p, "rt", encoding="utf-8") as fh:
        if p.lower().endswith((".jsonl", ".json")):
            yield from (json.loads(line) for line in fh if line.strip())
        else:
            yield from csv.DictReader(fh)


def load_corpus(paths: Sequence[str]) -> dict[str, list[str]]:
    """Captions by normalised corpus label, de-duplicated, in file order."""
    by_label: dict[str, list[str]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for path in paths:
        is_ucm = Path(path).name.lower().startswith("ucm_captions")
        for row in _rows(path):
            if row.get("label"):
                label = normalise_label(row["label"])
            elif is_ucm:
                label = UCM_CLASSES[(int(Path(row["filename"]).stem) - 1) // 100]
            else:
                continue  # no scene label (e.g. Sydney-captions): cannot be matched by class
            raw = row.get("sentence") or row.get("caption") or row.get("captions") or ""
            texts = raw if isinstance(raw, list) else _sentences(str(raw))
            for text in texts:
                if (label, text) not in seen:
                    seen.add((label, text))
                    by_label[label].append(text)
    if not by_label:
        raise ValueError(
            f"caption corpus {list(paths)} has no labelled captions; it needs a `label` column "
            "and `sentence` (list) or `caption` column"
        )
    return dict(by_label)


class RetrievalCaptioner:
    """Draws `per_image` real captions of the sample's class, deterministically per image."""

    def __init__(
        self,
        corpus: dict[str, list[str]],
        corpus_name: str = "corpus",
        label_map: dict[str, Sequence[str]] | None = None,
        per_image: int = 2,
        seed: int = 0,
    ) -> None:
        self.corpus = corpus
        self.label_map = {k: tuple(v) for k, v in (label_map or {}).items()}
        self.per_image = per_image
        self.seed = seed
        self.id = f"retrieval:{corpus_name}/{VERSION}"

    def pool(self, label: str) -> list[str]:
        """Every corpus caption that describes `label`."""
        labels = self.label_map.get(label) or BUILTIN_ALIASES.get(label) or (label,)
        out: list[str] = []
        for corpus_label in labels:
            out.extend(self.corpus.get(normalise_label(corpus_label), ()))
        return out

    def caption(self, samples: Sequence[SampleView]) -> list[Candidate]:
        """Candidates for labelled samples whose class the corpus covers; none otherwise."""
        out = []
        for sample in samples:
            pool = self.pool(sample.label) if sample.label else []
            if not pool:
                continue
            rng = random.Random(seed_from(self.seed, sample.sample_id, sep="|"))
            picks = rng.sample(range(len(pool)), min(self.per_image, len(pool)))
            out += [Candidate(sample.sample_id, self.id, pool[i]) for i in picks]
        return out

    def coverage(self, labels: Iterable[str]) -> dict[str, int]:
        """Pool size per class: which classes this corpus can caption, and how richly."""
        return {label: len(self.pool(label)) for label in sorted(set(labels))}
