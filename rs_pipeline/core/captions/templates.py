"""Metadata/template captioner in the style of RemoteCLIP and SkyScript.

Captions are rendered from what is known about a tile (class, objects with counts, colours
and positions, GSD, sensor) through several template families, so the language varies while
every statement stays true. Degraders render altered facts through the same families, so a
degraded caption differs from its faithful source in the one fact that was changed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from rs_pipeline.core.captions.base import Candidate, SampleView
from rs_pipeline.core.captions.facts import Facts, facts_of, scene_phrase
from rs_pipeline.core.seeds import seed_from
from rs_pipeline.core.sources.synthrs import TileAnnotation
from rs_pipeline.core.vocabulary import noun, number_word

VERSION = "v1"
FAMILIES = ("terse", "counts", "positions", "resolution", "detailed", "overhead")
# Families that state every fact a degrader can change (class, counts, colours, positions).
DETAILED_FAMILIES = (4, 5)
MAX_KINDS = 4  # kinds named per caption; more reads as a list, not a caption
MAX_SPOTS = 2  # uniquely named objects given a position per caption
MAX_TINTS = 2  # a kind's colours are named only when it has at most this many
# Kinds a scene class implies, so naming them is no hallucination (a forest has trees).
IMPLIED_KINDS: dict[str, frozenset[str]] = {"forest": frozenset({"tree"})}


def article(phrase: str) -> str:
    """`a forest`, `an airport`, `an 8 m resolution image`."""
    vowel_sound = phrase[:1] in ("a", "e", "i", "o", "u") or re.match(r"(8|11|18)\b", phrase)
    return ("an " if vowel_sound else "a ") + phrase


def join(parts: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def counted(facts: Facts) -> list[str]:
    """`three red buildings` per kind; colours only where a kind has at most MAX_TINTS."""
    colours = dict(facts.colours)
    out = []
    for kind, n in facts.counts[:MAX_KINDS]:
        tone = colours.get(kind, ())
        tint = " and ".join(tone) + " " if 0 < len(tone) <= MAX_TINTS else ""
        out.append(f"{number_word(n)} {tint}{noun(kind, n)}")
    return out


def located(position: str) -> str:
    """`in the top left`, `on the left`, `at the top`, `in the center`."""
    prep = {"left": "on", "right": "on", "top": "at", "bottom": "at"}.get(position, "in")
    return f"{prep} the {position}"


def spots(facts: Facts, verb: str = "") -> list[str]:
    """`a red car in the top left` for the first MAX_SPOTS uniquely named objects."""
    link = f" {verb}" if verb else ""
    placed = facts.placed[:MAX_SPOTS]
    return [f"{article(c + ' ' + noun(k, 1))}{link} {located(p)}" for c, k, p in placed]


def _resolution(facts: Facts) -> str:
    return f"a {round(facts.gsd_m, 1):g} m resolution image" if facts.gsd_m else "an image"


def render(facts: Facts, family: int) -> str:
    """One caption of `facts` in template family `family` (any int, taken modulo)."""
    name = FAMILIES[family % len(FAMILIES)]
    scene, things, places = article(scene_phrase(facts.scene)), counted(facts), spots(facts)
    with_things = f" with {join(things)}" if things else ""
    if name == "terse":
        return f"a satellite image of {scene}."
    if name == "counts":
        return f"an aerial view of {scene}{with_things}."
    if name == "positions":
        listed = join(places or things) if places or things else "no distinct objects"
        return f"{scene} scene with {listed}."
    if name == "resolution":
        return f"{_resolution(facts)} showing {scene}{with_things}."
    if name == "detailed":
        tail = f", with {join(places)}" if places else ""
        return f"{scene} seen from above" + (f": {join(things)}{tail}." if things else ".")
    if not things:
        return f"an overhead image of an empty {scene_phrase(facts.scene)}."
    where = "; " + join(spots(facts, "is")) if places else ""
    return f"an overhead image of {scene} containing {join(things)}{where}."


# Readable names of common user classes (RSSCN7) whose label is not a phrase.
READABLE = {"river_lake": "river or lake", "parking": "parking lot", "industry": "industrial area",
            "grass": "grassland"}  # fmt: skip


def readable(label: str) -> str:
    """A class as captions name it: `parking_lot` -> `parking lot`."""
    return READABLE.get(label) or scene_phrase(label)


def faithful_caption(annotation: TileAnnotation, family: int) -> str:
    """A caption of a SynthRS annotation in template family `family`; it states only facts."""
    return render(facts_of(annotation), family)


def _sensor_phrase(sample: SampleView) -> str:
    """`a 10 m resolution Sentinel-2 MSI image`, as far as the metadata goes."""
    words = [f"{sample.gsd_m:g} m resolution"] if sample.gsd_m else []
    words += [sample.sensor] if sample.sensor else []
    return article(" ".join(words + ["image"])) if words else "a remote sensing image"


def metadata_caption(sample: SampleView, family: int) -> str:
    """Without ground truth: a caption from the label, GSD and sensor only."""
    if not sample.label:
        # One form whatever the family: variants of a caption with no content would give
        # pairs whose preference means nothing.
        return f"{_sensor_phrase(sample)} of the earth's surface."
    scene = article(readable(sample.label))
    forms = (
        f"a satellite image of {scene}.",
        f"an aerial view of {scene}.",
        f"{scene} scene seen from above.",
        f"{_sensor_phrase(sample)} of {scene}.",
        f"{scene} seen from above.",
        f"an overhead image of {scene}.",
    )
    return forms[family % len(forms)]


def families_for(seed: int, sample_id: str, n: int) -> list[int]:
    """`n` distinct families (at most all of them) for an image, chosen by a stable hash."""
    rng = random.Random(seed_from("template-families", seed, sample_id))
    return rng.sample(range(len(FAMILIES)), min(max(n, 0), len(FAMILIES)))


class TemplateCaptioner:
    """`per_image` template captions per image (one per family), from ground truth or metadata.

    Images with neither label nor annotation get one honest, uninformative caption.
    """

    id = f"template/{VERSION}"

    def __init__(self, per_image: int = 2, seed: int = 0) -> None:
        if not isinstance(per_image, int) or per_image < 1:
            raise ValueError(f"per_image must be an int >= 1, got {per_image!r}")
        self.per_image, self.seed = per_image, seed

    def texts(self, sample: SampleView) -> list[str]:
        """The distinct caption texts of one image, in family order."""
        out: list[str] = []
        for family in families_for(self.seed, sample.sample_id, self.per_image):
            text = (
                render(facts_of(sample.annotation), family)
                if sample.annotation is not None
                else metadata_caption(sample, family)
            )
            if text not in out:
                out.append(text)
        return out

    def caption(self, samples: Sequence[SampleView]) -> list[Candidate]:
        """Candidates in input order; one image never gets the same text twice."""
        return [Candidate(s.sample_id, self.id, t) for s in samples for t in self.texts(s)]
