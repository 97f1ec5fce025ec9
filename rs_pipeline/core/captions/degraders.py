"""SynthRS degraders: known-bad variants of a faithful caption, one failure mode each.

They reproduce how synthetic captions go wrong (a hallucinated object, a wrong count, class,
position or colour, an uninformative, truncated or garbled text). Fact edits are rendered in
the faithful caption's own template family, so each pair differs in the one thing changed,
and each degraded candidate records exactly what that was, so its true quality is known.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from rs_pipeline.core.captions.base import Candidate, SampleView
from rs_pipeline.core.captions.facts import CLASS_PHRASES, Facts, facts_of
from rs_pipeline.core.captions.templates import (
    DETAILED_FAMILIES,
    IMPLIED_KINDS,
    MAX_KINDS,
    MAX_SPOTS,
    MAX_TINTS,
    render,
)
from rs_pipeline.core.seeds import seed_from
from rs_pipeline.core.vocabulary import COLOURS, OBJECT_KINDS, POSITIONS

VERSION = "v1"
DEGRADATIONS = ("hallucinated_object", "wrong_count", "wrong_class", "wrong_position",
                "wrong_colour", "generic", "truncated", "garbled")  # fmt: skip
GENERIC = ("a remote sensing image.", "an image of an area seen from above.",
           "a picture taken from the sky.", "a satellite view of some land.")  # fmt: skip
# Moves to the far side of the tile, so a wrong position is never a neighbouring-cell near miss.
_OPPOSITE = {"top left": "bottom right", "top right": "bottom left", "top": "bottom",
             "left": "right", "center": "top left"}  # fmt: skip
_OPPOSITE |= {v: k for k, v in list(_OPPOSITE.items()) if v not in _OPPOSITE}
_NOISE = "bcdfghjklmnpqrstvwxz"  # consonant runs: what a broken decoder emits


@dataclass(frozen=True)
class Degraded:
    """One degraded caption and what was done to get it."""

    text: str
    degradation: str


_FactEdit = Callable[[Facts, random.Random], tuple[Facts, str] | None]


def _hallucinate(f: Facts, rng: random.Random) -> tuple[Facts, str] | None:
    implied = IMPLIED_KINDS.get(f.scene, frozenset())
    absent = [k for k in OBJECT_KINDS if k not in dict(f.counts) and k not in implied]
    if not absent:
        return None
    kind, n = rng.choice(absent), rng.randint(1, 4)
    edited = f.with_count(kind, n).with_colours(kind, (rng.choice(COLOURS),))
    return edited, f"hallucinated_object: {kind}"


def _wrong_count(f: Facts, rng: random.Random) -> tuple[Facts, str] | None:
    if not f.counts:
        return None
    kind, n = rng.choice(f.counts[:MAX_KINDS])  # only these are rendered
    wrong = rng.choice([m for m in range(1, 13) if m != n and abs(m - n) <= 4])
    return f.with_count(kind, wrong), f"wrong_count: {kind} {n}->{wrong}"


def _wrong_class(f: Facts, rng: random.Random) -> tuple[Facts, str] | None:
    other = rng.choice([c for c in CLASS_PHRASES if c != f.scene])
    return replace(f, scene=other), f"wrong_class: {f.scene}->{other}"


def _wrong_position(f: Facts, rng: random.Random) -> tuple[Facts, str] | None:
    if not f.placed:
        return None
    i = rng.randrange(min(MAX_SPOTS, len(f.placed)))  # only these are rendered
    colour, kind, pos = f.placed[i]
    wrong = _OPPOSITE.get(pos) or rng.choice([p for p in POSITIONS if p != pos])
    placed = f.placed[:i] + ((colour, kind, wrong),) + f.placed[i + 1 :]
    return replace(f, placed=placed), f"wrong_position: {colour} {kind} {pos}->{wrong}"


def _wrong_colour(f: Facts, rng: random.Random) -> tuple[Facts, str] | None:
    shown = dict(f.counts[:MAX_KINDS])
    tinted = [(k, c) for k, c in f.colours if len(c) <= MAX_TINTS and k in shown]
    if not tinted:
        return None
    kind, colours = rng.choice(tinted)
    wrong = rng.choice([c for c in COLOURS if c not in colours])
    edited = f.with_colours(kind, (wrong,))
    edited = replace(
        edited, placed=tuple((wrong if k == kind else c, k, p) for c, k, p in f.placed)
    )
    return edited, f"wrong_colour: {kind} {'/'.join(colours)}->{wrong}"


def truncate(text: str, rng: random.Random) -> Degraded:
    """The first 30-60% of `text`, cut at a word boundary's punctuation."""
    cut = text[: max(6, int(len(text) * rng.uniform(0.3, 0.6)))].rstrip(" ,;:.")
    return Degraded(cut, f"truncated: {len(text)}->{len(cut)} chars")


def garble(text: str, rng: random.Random) -> Degraded:
    """A third of the words replaced by consonant runs or rotated out of place."""
    words = text.rstrip(".").split()
    hits = rng.sample(range(len(words)), max(1, len(words) // 3))
    replaced, shuffled = hits[: max(1, len(hits) // 2)], hits[max(1, len(hits) // 2) :]
    for i in replaced:
        words[i] = "".join(rng.choice(_NOISE) for _ in range(rng.randint(3, 6)))
    before = list(words)
    for i, j in zip(shuffled, shuffled[1:] + shuffled[:1], strict=True):  # a rotation moves all
        words[i] = before[j]
    moved = sum(words[i] != before[i] for i in shuffled)
    note = f"{len(replaced) + moved} tokens shuffled/replaced ({len(replaced)} replaced)"
    return Degraded(" ".join(words), f"garbled: {note}")


_FACT_EDITS: dict[str, _FactEdit] = {"hallucinated_object": _hallucinate,
                                     "wrong_count": _wrong_count, "wrong_class": _wrong_class,
                                     "wrong_position": _wrong_position,
                                     "wrong_colour": _wrong_colour}  # fmt: skip


def degrade(facts: Facts, family: int, kind: str, rng: random.Random) -> Degraded | None:
    """One degradation of the faithful caption `render(facts, family)`; None where it cannot
    apply (nothing to change, or the change would not show in this family's text)."""
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; allowed: {', '.join(DEGRADATIONS)}")
    faithful = render(facts, family)
    if kind in _FACT_EDITS:
        edited = _FACT_EDITS[kind](facts, rng)
        if edited is None:
            return None
        out = Degraded(render(edited[0], family), edited[1])
    elif kind == "generic":
        out = Degraded(rng.choice(GENERIC), "generic")
    else:
        out = truncate(faithful, rng) if kind == "truncated" else garble(faithful, rng)
    return out if out.text != faithful else None


class SynthRSDegrader:
    """A faithful caption plus `per_image` degraded ones for every annotated image.

    Kinds are drawn in a per-image shuffled order (repeating when `per_image` exceeds them);
    a kind that cannot apply to a tile is replaced by the next configured kind that can.
    Images without an annotation get nothing: their truth is unknown.
    """

    id = f"degrader/{VERSION}"

    def __init__(
        self, kinds: Sequence[str] = DEGRADATIONS, per_image: int = 3, seed: int = 0
    ) -> None:
        kinds = tuple(kinds)
        unknown = sorted(set(kinds) - set(DEGRADATIONS))
        if unknown or not kinds:
            raise ValueError(f"unknown or no degradations {unknown}; allowed: {list(DEGRADATIONS)}")
        if not isinstance(per_image, int) or per_image < 0:
            raise ValueError(f"per_image must be an int >= 0, got {per_image!r}")
        self.kinds, self.per_image, self.seed = tuple(dict.fromkeys(kinds)), per_image, seed

    def degraded(self, facts: Facts, family: int, rng: random.Random) -> list[Degraded]:
        """Up to `per_image` distinct degraded captions of `render(facts, family)`."""
        order = list(self.kinds)
        rng.shuffle(order)
        out: list[Degraded] = []
        seen, cursor, misses = {render(facts, family)}, 0, 0
        # Stop after three fruitless rounds: some tiles admit few distinct variants of a kind.
        while len(out) < self.per_image and misses < 3 * len(order):
            done = degrade(facts, family, order[cursor % len(order)], rng)
            cursor += 1
            if done is None or done.text in seen:
                misses += 1  # not applicable here: the next kind in the order stands in
                continue
            seen.add(done.text)
            out.append(done)
            misses = 0
        return out

    def _for_image(self, s: SampleView) -> list[Candidate]:
        rng = random.Random(seed_from("degrader", self.seed, s.sample_id))
        facts = facts_of(s.annotation)
        family = DETAILED_FAMILIES[rng.randrange(len(DETAILED_FAMILIES))]
        out = [Candidate(s.sample_id, f"{self.id}:faithful", render(facts, family))]
        out += [
            Candidate(s.sample_id, self.id, d.text, degradation=d.degradation)
            for d in self.degraded(facts, family, rng)
        ]
        return out

    def caption(self, samples: Sequence[SampleView]) -> list[Candidate]:
        """Candidates for annotated images, in input order; none for the others."""
        return [c for s in samples if s.annotation is not None for c in self._for_image(s)]
