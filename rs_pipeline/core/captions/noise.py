"""Error injection: replace a share of clean candidates by realistic errors of known kind.

Synthetic captions go wrong in recognisable ways: a caption of another scene (a hallucinated
scene), the right caption with the class phrase swapped, a generic sentence, a truncated or a
garbled text. For labelled images without object ground truth (a real ImageFolder) those are
the errors this module writes; for SynthRS tiles it uses the degraders, whose class-changing
(`wrong_class`) and class-keeping (count, colour, position, object) edits are kept apart.

Each corrupted candidate records what was broken (`degradation`), so the pool's true quality
is known *for measurement only*: the oracle scorer and the benchmark read it, selection never
does. Draws are seeded hashes of the caption id, so the same pool is corrupted the same way
on every machine and in every chunking.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from rs_pipeline.core.captions.base import Candidate
from rs_pipeline.core.captions.degraders import DEGRADATIONS, GENERIC, degrade, garble, truncate
from rs_pipeline.core.captions.facts import facts_of
from rs_pipeline.core.captions.oracle import KNOWN_QUALITY, LABEL_SYNONYMS, NOISE_SUFFIX, normalise
from rs_pipeline.core.captions.templates import DETAILED_FAMILIES, readable
from rs_pipeline.core.config import NoiseConfig
from rs_pipeline.core.config.data import CLASS_CHANGING_KINDS
from rs_pipeline.core.seeds import seed_from, unit_from
from rs_pipeline.core.sources.synthrs import TileAnnotation

VERSION = "v1"
SUFFIX = NOISE_SUFFIX  # appended to the captioner id of a corrupted candidate (oracle.py)


@dataclass(frozen=True)
class Subject:
    """What injection needs to know of an image: its label and any SynthRS ground truth."""

    label: str | None
    annotation: TileAnnotation | None = None


@dataclass(frozen=True)
class Noisy:
    """A candidate after injection, and its true quality where the injection makes it known."""

    candidate: Candidate
    quality: float | None


@dataclass
class NoiseReport:
    """How many clean candidates were eligible, corrupted, and of which kind."""

    eligible: int = 0
    corrupted: int = 0
    by_kind: Counter = field(default_factory=Counter)

    @property
    def class_changing(self) -> int:
        return sum(n for k, n in self.by_kind.items() if k in CLASS_CHANGING_KINDS)

    def as_dict(self) -> dict:
        """JSON-ready counts, class-changing and class-keeping apart."""
        return {"eligible": self.eligible, "corrupted": self.corrupted,
                "class_changing": self.class_changing,
                "class_keeping": self.corrupted - self.class_changing,
                "by_kind": dict(sorted(self.by_kind.items()))}  # fmt: skip


def _draw(mix: dict[str, float], u: float) -> list[str]:
    """Kinds in the order to try: the one `u` picks by weight, then the rest by weight."""
    kinds = sorted(mix, key=lambda k: (-mix[k], k))
    total, acc = sum(mix.values()), 0.0
    for i, kind in enumerate(kinds):
        acc += mix[kind] / total
        if u < acc or i == len(kinds) - 1:
            return [kind] + [k for k in kinds if k != kind and mix[k] > 0]
    return kinds  # unreachable: the loop returns on its last kind


def _phrases(label: str) -> tuple[str, ...]:
    key = label.strip().lower()
    return LABEL_SYNONYMS.get(key, (normalise(readable(key)),))


def _class_swap(text: str, label: str, other: str) -> str | None:
    """`text` with its first phrase naming `label` replaced by one naming `other`."""
    for phrase in sorted(_phrases(label), key=len, reverse=True):
        pattern = re.compile(rf"\b{re.escape(phrase)}\b", re.IGNORECASE)
        if pattern.search(text):
            return pattern.sub(_phrases(other)[0], text, count=1)
    return None


class NoiseInjector:
    """Corrupts `rate` of the clean candidates of a batch (see the module docstring)."""

    def __init__(self, cfg: NoiseConfig) -> None:
        unknown = sorted(set(cfg.synthrs_mix) - set(DEGRADATIONS))
        if unknown:
            raise ValueError(
                f"captions.noise.synthrs_mix: unknown kinds {unknown}; allowed {DEGRADATIONS}"
            )
        self.cfg = cfg

    def apply(
        self, subjects: dict[str, Subject], candidates: Sequence[Candidate]
    ) -> tuple[list[Noisy], NoiseReport]:
        """Every candidate in order, a drawn share replaced; the report of what was done."""
        rep, out = NoiseReport(), []
        by_label = self._clean_texts_by_label(subjects, candidates)
        for cand in candidates:
            view = subjects[cand.sample_id]
            eligible = cand.status == "ok" and cand.degradation is None
            if not eligible or (view.label is None and view.annotation is None):
                out.append(Noisy(cand, None))
                continue
            rep.eligible += 1
            key = (self.cfg.seed, cand.sample_id, cand.captioner_id, cand.text)
            if unit_from("noise-rate", *key) >= self.cfg.rate:
                out.append(Noisy(cand, None if view.annotation else KNOWN_QUALITY["clean"]))
                continue
            rng = random.Random(seed_from("noise-edit", *key))
            done = (self._synthrs(view, rng) if view.annotation is not None
                    else self._labelled(view, cand.text, by_label, rng))  # fmt: skip
            if done is None:  # no kind applies to this candidate: it stays clean, and counted
                rep.by_kind["not_applicable"] += 1
                out.append(Noisy(cand, None if view.annotation else KNOWN_QUALITY["clean"]))
                continue
            text, kind, note = done
            rep.corrupted += 1
            rep.by_kind[kind] += 1
            noisy = replace(cand, captioner_id=cand.captioner_id + SUFFIX, text=text,
                            degradation=note)  # fmt: skip
            out.append(Noisy(noisy, None if view.annotation else KNOWN_QUALITY[kind]))
        return out, rep

    @staticmethod
    def _clean_texts_by_label(subjects, candidates) -> dict[str, list[str]]:
        """Clean candidate texts of labelled images by label: the pool of other scenes."""
        by_label: dict[str, set[str]] = defaultdict(set)
        for c in candidates:
            view = subjects[c.sample_id]
            if view.label and view.annotation is None and c.status == "ok" and not c.degradation:
                by_label[view.label].add(c.text)
        return {k: sorted(v) for k, v in by_label.items()}

    def _labelled(self, view: Subject, text: str, by_label, rng: random.Random):
        """(text, kind, note) for a labelled image's caption, or None where nothing applies."""
        others = sorted(k for k in by_label if k != view.label) or sorted(
            k for k in LABEL_SYNONYMS if k != view.label.lower()
        )
        for kind in _draw(self.cfg.mix, rng.random()):
            other = rng.choice(others)
            if kind == "other_class_caption" and by_label.get(other):
                return rng.choice(by_label[other]), kind, f"{kind}: {view.label}->{other}"
            if kind == "class_swap" and (swapped := _class_swap(text, view.label, other)):
                return swapped, kind, f"{kind}: {view.label}->{other}"
            if kind == "generic":
                return rng.choice(GENERIC), kind, kind
            if kind in ("truncated", "garbled") and len(text.split()) >= 3:
                d = truncate(text, rng) if kind == "truncated" else garble(text, rng)
                if d.text != text:
                    return d.text, kind, d.degradation
        return None

    def _synthrs(self, view: Subject, rng: random.Random):
        """(text, kind, note) from the degraders for a SynthRS tile, or None."""
        facts = facts_of(view.annotation)
        family = DETAILED_FAMILIES[rng.randrange(len(DETAILED_FAMILIES))]
        for kind in _draw(self.cfg.synthrs_mix, rng.random()):
            done = degrade(facts, family, kind, rng)
            if done is not None:
                return done.text, kind, done.degradation
        return None
