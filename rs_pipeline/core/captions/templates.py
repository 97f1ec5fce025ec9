"""Metadata/template captioner in the style of RemoteCLIP and SkyScript.

Captions are rendered from what is known about a tile (class, objects with counts, colours
and positions, GSD, sensor) through several template families, so the language varies while
every statement stays true.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from rs_pipeline.core.captions.base import Candidate, SampleView
from rs_pipeline.core.captions.facts import Facts, facts_of, noun, number_word, scene_phrase

VERSION = "v1"
FAMILIES = ("terse", "counts", "positions", "resolution")


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _counted(facts: Facts, limit: int = 4) -> list[str]:
    """`three red buildings`, colours named when the kind has at most two."""
    colours = dict(facts.colours)
    out = []
    for kind, n in facts.counts[:limit]:
        tone = colours.get(kind, ())
        tint = " and ".join(tone) + " " if 0 < len(tone) <= 2 else ""
        out.append(f"{number_word(n)} {tint}{noun(kind, n)}")
    return out


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def render(facts: Facts, family: int) -> str:
    """One caption of `facts` in template family `family` (0..3); every claim is a fact."""
    scene = scene_phrase(facts.scene)
    counted = _counted(facts)
    name = FAMILIES[family % len(FAMILIES)]
    if name == "terse" or not counted and name != "resolution":
        return f"a satellite image of {_article(scene)}."
    if name == "counts":
        return f"an aerial view of {_article(scene)} with {_join(counted)}."
    if name == "positions" and facts.placed:
        spots = [f"{_article(c + ' ' + noun(k, 1))} in the {p}" for c, k, p in facts.placed[:2]]
        return f"{_article(scene)} scene with {_join(spots)}."
    if name == "positions":
        return f"{_article(scene)} scene with {_join(counted)}."
    res = f"a {facts.gsd_m:.1f} m resolution image" if facts.gsd_m else "a remote sensing image"
    tail = f" with {_join(counted)}" if counted else ""
    return f"{res} showing {_article(scene)}{tail}."


def faithful_caption(annotation, family: int) -> str:
    """A caption of a SynthRS annotation that states only true facts."""
    return render(facts_of(annotation), family)


def _metadata_caption(sample: SampleView, family: int) -> str:
    """Without ground truth: the label and acquisition metadata only."""
    res = f"a {sample.gsd_m:g} m resolution" if sample.gsd_m else "a"
    sensor = f" {sample.sensor}" if sample.sensor else ""
    if sample.label:
        scene = scene_phrase(sample.label)
        forms = (f"a satellite image of {_article(scene)}.",
                 f"an aerial view of {_article(scene)}.",
                 f"{res}{sensor} image of {_article(scene)}.")  # fmt: skip
        return forms[family % len(forms)]
    return f"{res}{sensor} image of the earth's surface."  # honest, and uninformative


def families_for(seed: int, sample_id: str, n: int) -> list[int]:
    """`n` distinct families for an image, chosen by a hash (stable across runs)."""
    start = int.from_bytes(hashlib.sha256(f"{seed}|{sample_id}".encode()).digest()[:4], "big")
    return [(start + i) % len(FAMILIES) for i in range(min(n, len(FAMILIES)))]


class TemplateCaptioner:
    """`per_image` template captions per image, from ground truth or metadata."""

    id = f"template/{VERSION}"

    def __init__(self, per_image: int = 2, seed: int = 0) -> None:
        self.per_image, self.seed = per_image, seed

    def caption(self, samples: Sequence[SampleView]) -> list[Candidate]:
        """Candidates in input order; duplicates of one image's text are not repeated."""
        out = []
        for s in samples:
            texts: list[str] = []
            for family in families_for(self.seed, s.sample_id, self.per_image):
                text = (render(facts_of(s.annotation), family) if s.annotation is not None
                        else _metadata_caption(s, family))  # fmt: skip
                if text not in texts:
                    texts.append(text)
            out += [Candidate(s.sample_id, self.id, t) for t in texts]
        return out
