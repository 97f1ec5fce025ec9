"""Ground-truth caption quality on SynthRS, and the two judges built on what is known.

`assess_caption` reads a caption's checkable claims back out (class, object kinds, counts,
colours, positions) with an explicit vocabulary and scores them against the annotation:
true claims add, false claims cost more than true ones earn, a caption that claims nothing
checkable scores low, and broken text (truncated, garbled) is penalised.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rs_pipeline.core.captions.base import Candidate, Ranking, SampleView
from rs_pipeline.core.captions.facts import (
    CLASS_PHRASES,
    COLOURS,
    KINDS,
    NUMBER_WORDS,
    POSITIONS,
    Facts,
    facts_of,
)
from rs_pipeline.core.sources.synthrs import TileAnnotation

_KIND_WORDS = {}
for _k in KINDS:
    _w = _k.replace("_", " ")
    _KIND_WORDS[_w] = _KIND_WORDS[_w + ("es" if _w.endswith("s") else "s")] = _k
_KIND_RE = "|".join(sorted(map(re.escape, _KIND_WORDS), key=len, reverse=True))
_COLOUR_RE = "|".join(COLOURS)
_NUM_RE = "|".join(NUMBER_WORDS) + r"|\d+"
_POS_RE = "|".join(sorted(POSITIONS, key=len, reverse=True)) + "|centre|middle"
_COUNT = re.compile(rf"\b({_NUM_RE}) ((?:(?:{_COLOUR_RE})(?: and | )?)*)({_KIND_RE})\b")
_TINT = re.compile(rf"\b((?:(?:{_COLOUR_RE})(?: and | ))+)({_KIND_RE})\b")
_PLACE = re.compile(rf"\b(?:({_COLOUR_RE}) )?({_KIND_RE}) (?:in|at) the ({_POS_RE})\b")
_DANGLING = {"a", "an", "the", "with", "and", "of", "in", "at", "on", "showing"}


@dataclass(frozen=True)
class Assessment:
    """A caption's true quality in [0, 1] and the claims that decided it."""

    score: float
    reasons: tuple[str, ...]


def _class_mentions(text: str) -> set[str]:
    found = set()
    for cls, phrases in CLASS_PHRASES.items():
        if any(re.search(rf"\b{re.escape(p)}\b", text) for p in phrases):
            found.add(cls)
    return found


def _claims(text: str, f: Facts) -> list[tuple[float, str]]:
    """(score delta, reason) for every checkable claim in the text."""
    counts, colours = dict(f.counts), dict(f.colours)
    out: list[tuple[float, str]] = []
    classes = _class_mentions(text)
    if f.scene in classes:
        out.append((0.25, f"class {f.scene}"))
    out += [(-0.4, f"wrong class {c}") for c in sorted(classes - {f.scene})]
    for word in sorted({m.group(0) for m in re.finditer(rf"\b({_KIND_RE})\b", text)}):
        kind = _KIND_WORDS[word]
        out.append((0.08, f"has {kind}") if kind in counts else (-0.25, f"no {kind} here"))
    for num, _, word in _COUNT.findall(text):
        kind, n = _KIND_WORDS[word], int(num) if num.isdigit() else NUMBER_WORDS.index(num)
        ok = counts.get(kind) == n
        out.append((0.08, f"count {kind}={n}") if ok else (-0.25, f"wrong count {kind}={n}"))
    for tint, word in _TINT.findall(text):
        kind = _KIND_WORDS[word]
        for colour in re.findall(_COLOUR_RE, tint):
            ok = colour in colours.get(kind, ())
            out.append((0.04, f"{colour} {kind}") if ok else (-0.2, f"no {colour} {kind}"))
    for colour, word, pos in _PLACE.findall(text):
        pos = "center" if pos in ("centre", "middle") else pos
        kind = _KIND_WORDS[word]
        ok = any(k == kind and p == pos and (not colour or c == colour) for c, k, p in f.placed)
        out.append((0.04, f"{kind} {pos}") if ok else (-0.2, f"no {kind} at {pos}"))
    return out


def _form_penalties(text: str) -> list[tuple[float, str]]:
    words = re.findall(r"[a-z0-9']+", text)
    out = []
    noise = [w for w in words if len(w) >= 3 and not w.isdigit() and not re.search("[aeiouy]", w)]
    if noise:
        out.append((-0.15 * len(noise), f"garbled: {len(noise)} non-words"))
    if text and text[-1] not in ".!?" and (not words or words[-1] in _DANGLING or len(words) < 4):
        out.append((-0.2, "ends mid-sentence"))
    elif text and text[-1] not in ".!?":
        out.append((-0.05, "no final stop"))
    return out


def assess_caption(text: str, annotation: TileAnnotation) -> Assessment:
    """Score a caption's claims against a tile's ground truth."""
    lowered = " ".join(text.lower().split())
    claims = _claims(lowered, facts_of(annotation))
    if not claims:  # nothing checkable: honest perhaps, but uninformative
        claims = [(-0.15, "states nothing checkable")]
    deltas = claims + _form_penalties(lowered)
    score = min(1.0, max(0.0, 0.3 + sum(d for d, _ in deltas)))
    return Assessment(round(score, 6), tuple(r for _, r in deltas))


def caption_quality(text: str, annotation: TileAnnotation) -> float:
    """The ground-truth quality of a caption in [0, 1]."""
    return assess_caption(text, annotation).score


def _ranking(scores: list[float], reason: str) -> Ranking:
    order = tuple(sorted(range(len(scores)), key=lambda i: (-scores[i], i)))
    return Ranking(order, tuple(scores), reason)


class OracleJudge:
    """Ranks candidates by their ground-truth quality (SynthRS only)."""

    id = "oracle/v1"

    def rank(self, sample: SampleView, candidates: Sequence[Candidate]) -> Ranking | None:
        """None without an annotation."""
        if sample.annotation is None:
            return None
        scores = [caption_quality(c.text, sample.annotation) for c in candidates]
        return _ranking(scores, "ground truth")


# Synonyms of label names, SynthRS and RSSCN7 classes included; user classes come in through
# the judge's `synonyms` argument.
LABEL_SYNONYMS: dict[str, tuple[str, ...]] = {
    **{cls: phrases for cls, phrases in CLASS_PHRASES.items()},
    "grass": ("grass", "grassland", "meadow", "lawn"),
    "field": ("field", "fields", "farmland", "cropland"),
    "industry": ("industrial", "industry", "factory", "factories", "warehouse"),
    "river_lake": ("river", "lake", "pond", "water"),
    "parking": ("parking", "parking lot", "car park"),
}
_STOP = {"this", "that", "with", "from", "there", "image", "some", "many", "have", "here"}


def _mentions(text: str, phrases: Sequence[str]) -> bool:
    return any(re.search(rf"\b{re.escape(p)}\b", text) for p in phrases)


class LabelConsistencyJudge:
    """A caption consistent with the known label beats an uninformative one, which beats one
    naming another class; within a tier, more distinct content words rank higher."""

    id = "label-consistency/v1"

    def __init__(self, synonyms: dict[str, Sequence[str]] | None = None) -> None:
        self.synonyms = {k: tuple(v) for k, v in (LABEL_SYNONYMS | (synonyms or {})).items()}

    def _phrases(self, label: str) -> tuple[str, ...]:
        return self.synonyms.get(label, (label.replace("_", " "),))

    def score(self, label: str, text: str) -> float:
        """Tier (2 consistent, 1 uninformative, 0 inconsistent) plus specificity < 1."""
        text = " ".join(text.lower().split())
        own = self._phrases(label)
        others = {p for k, ps in self.synonyms.items() if k != label for p in ps} - set(own)
        if _mentions(text, own):
            tier = 2.0
        elif _mentions(text, sorted(others)):
            tier = 0.0
        else:
            tier = 1.0
        content = {w for w in re.findall(r"[a-z]+", text) if len(w) > 3 and w not in _STOP}
        return tier + min(len(content), 20) / 25.0

    def rank(self, sample: SampleView, candidates: Sequence[Candidate]) -> Ranking | None:
        """None without a label."""
        if not sample.label:
            return None
        return _ranking([self.score(sample.label, c.text) for c in candidates], "label")
