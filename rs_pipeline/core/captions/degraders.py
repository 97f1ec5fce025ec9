"""SynthRS degraders: known-bad variants of a faithful caption, one failure mode each.

They reproduce how synthetic captions go wrong (a hallucinated object, a wrong count, class,
position or colour, an uninformative, truncated or garbled text). Each degraded candidate
records exactly what was changed, so its true quality is known.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import replace

from rs_pipeline.core.captions.base import Candidate, SampleView
from rs_pipeline.core.captions.facts import (
    CLASS_PHRASES,
    COLOURS,
    KINDS,
    POSITIONS,
    Facts,
    facts_of,
)
from rs_pipeline.core.captions.templates import render

VERSION = "v1"
DEGRADATIONS = ("hallucinated_object", "wrong_count", "wrong_class", "wrong_position",
                "wrong_colour", "generic", "truncated", "garbled")  # fmt: skip
GENERIC = ("a remote sensing image.", "an image of an area seen from above.",
           "a picture taken from the sky.", "a satellite view of some land.")  # fmt: skip
_OPPOSITE = {"top left": "bottom right", "top right": "bottom left", "top": "bottom",
             "left": "right", "center": "top left"}  # fmt: skip
_OPPOSITE |= {v: k for k, v in list(_OPPOSITE.items()) if v not in _OPPOSITE}


def _hallucinate(f: Facts, rng: random.Random):
    absent = [k for k in KINDS if k not in dict(f.counts)]
    kind, n = rng.choice(absent), rng.randint(1, 4)
    g = f.with_count(kind, n).with_colours(kind, (rng.choice(COLOURS),))
    return g, 1, f"hallucinated_object: {kind}"


def _wrong_count(f: Facts, rng: random.Random):
    if not f.counts:
        return None
    kind, n = rng.choice(f.counts)
    wrong = rng.choice([m for m in range(1, 13) if m != n and abs(m - n) <= 4])
    return f.with_count(kind, wrong), 1, f"wrong_count: {kind} {n}->{wrong}"


def _wrong_class(f: Facts, rng: random.Random):
    other = rng.choice([c for c in CLASS_PHRASES if c != f.scene])
    return replace(f, scene=other), rng.choice((0, 1, 3)), f"wrong_class: {f.scene}->{other}"


def _wrong_position(f: Facts, rng: random.Random):
    if not f.placed:
        return None
    i = rng.randrange(min(2, len(f.placed)))  # only the first two are rendered
    colour, kind, pos = f.placed[i]
    wrong = _OPPOSITE.get(pos) or rng.choice([p for p in POSITIONS if p != pos])
    placed = f.placed[:i] + ((colour, kind, wrong),) + f.placed[i + 1 :]
    return replace(f, placed=placed), 2, f"wrong_position: {colour} {kind} {pos}->{wrong}"


def _wrong_colour(f: Facts, rng: random.Random):
    tinted = [(k, c) for k, c in f.colours if len(c) <= 2 and k in dict(f.counts[:3])]
    if not tinted:
        return None
    kind, colours = rng.choice(tinted)
    wrong = rng.choice([c for c in COLOURS if c not in colours])
    g = f.with_colours(kind, (wrong,))
    g = replace(g, placed=tuple((wrong if k == kind else c, k, p) for c, k, p in g.placed))
    return g, 1, f"wrong_colour: {kind} {'/'.join(colours)}->{wrong}"


def _truncate(text: str, rng: random.Random) -> tuple[str, str]:
    cut = max(6, int(len(text) * rng.uniform(0.3, 0.6)))
    return text[:cut].rstrip(), f"truncated: {len(text)}->{len(text[:cut].rstrip())} chars"


def _garble(text: str, rng: random.Random) -> tuple[str, str]:
    words = text.rstrip(".").split()
    hits = rng.sample(range(len(words)), max(2, len(words) // 3)) if len(words) > 2 else [0]
    for i in hits:  # consonant noise where words were: what a broken decoder emits
        words[i] = "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(rng.randint(3, 6)))
    if len(words) > 3:
        a, b = rng.sample(range(len(words)), 2)
        words[a], words[b] = words[b], words[a]
    return " ".join(words), f"garbled: {len(hits)} words replaced, 2 swapped"


_FACT_EDITS = {"hallucinated_object": _hallucinate, "wrong_count": _wrong_count,
               "wrong_class": _wrong_class, "wrong_position": _wrong_position,
               "wrong_colour": _wrong_colour}  # fmt: skip


def degrade(facts: Facts, faithful: str, kind: str, rng: random.Random) -> tuple[str, str] | None:
    """(text, what was done) for one degradation; None when it cannot apply to these facts."""
    if kind in _FACT_EDITS:
        edited = _FACT_EDITS[kind](facts, rng)
        return None if edited is None else (render(edited[0], edited[1]), edited[2])
    if kind == "generic":
        return rng.choice(GENERIC), "generic"
    return _truncate(faithful, rng) if kind == "truncated" else _garble(faithful, rng)


class SynthRSDegrader:
    """A faithful caption plus `per_image` degraded ones for every annotated image."""

    id = f"degrader/{VERSION}"

    def __init__(self, kinds: Sequence[str] = DEGRADATIONS, per_image: int = 3, seed: int = 0):
        unknown = sorted(set(kinds) - set(DEGRADATIONS))
        if unknown:
            raise ValueError(f"unknown degradations {unknown}; allowed: {list(DEGRADATIONS)}")
        self.kinds, self.per_image, self.seed = tuple(kinds), per_image, seed

    def _for_image(self, s: SampleView) -> list[Candidate]:
        digest = hashlib.sha256(f"{self.seed}|{s.sample_id}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        facts = facts_of(s.annotation)
        faithful = render(facts, 1)  # the counts family: the most checkable statement
        out = [Candidate(s.sample_id, f"{self.id}:faithful", faithful)]
        order = list(self.kinds)
        rng.shuffle(order)
        for kind in order:  # inapplicable kinds are skipped, the next one is tried
            if len(out) > self.per_image:
                break
            done = degrade(facts, faithful, kind, rng)
            if done is not None and done[0] != faithful:
                out.append(Candidate(s.sample_id, self.id, done[0], degradation=done[1]))
        return out

    def caption(self, samples: Sequence[SampleView]) -> list[Candidate]:
        """Candidates for annotated images, in input order; none for the others."""
        return [c for s in samples if s.annotation is not None for c in self._for_image(s)]
