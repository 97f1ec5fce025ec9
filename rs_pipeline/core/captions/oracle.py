"""Ground-truth caption quality on SynthRS, and the two judges built on what is known.

`assess_caption` reads a caption's checkable claims back out (class, object kinds, counts,
colours, positions) with a small explicit vocabulary and scores them against the annotation:

    score = precision**2 * (0.2 + 0.8 * (1 - exp(-true_weight / 4))) * form

Precision (true claim weight over all claim weight) makes a false claim cost more than a true
one earns, and a wrong class (weight 3) costs most; the second factor rewards saying more true
things but saturates, so a caption that states nothing checkable scores 0.2; `form` penalises
broken text: non-word tokens, disfluent word order, a caption that ends mid-phrase.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rs_pipeline.core.captions.base import Candidate, Ranking, SampleView
from rs_pipeline.core.captions.facts import CLASS_PHRASES
from rs_pipeline.core.captions.templates import IMPLIED_KINDS
from rs_pipeline.core.sources.synthrs import TileAnnotation
from rs_pipeline.core.vocabulary import COLOURS, NUMBER_WORDS, POSITIONS

# ---- vocabulary --------------------------------------------------------------------------
# Extra ways captions name each scene class. Ambiguous words are left out on purpose: "shore"
# (lakes have shores), "fields" (next to houses), "storage tanks" (objects of industrial scenes).
_MORE_CLASS_PHRASES: dict[str, tuple[str, ...]] = {
    "farmland": ("farm fields", "crop fields", "agricultural land", "farmlands"),
    "forest": ("woods", "forested area", "forests"),
    "lake": ("pond", "reservoir", "lakes"),
    "river": ("stream", "waterway", "rivers"),
    "residential": ("neighborhood", "neighbourhood", "housing estate", "suburb"),
    "industrial": ("industrial zone", "industrial park", "factory", "factories"),
    "airport": ("airfield", "aerodrome", "airports"),
    "harbor": ("seaport", "dock", "docks", "harbors", "harbours"),
    "parking_lot": ("car park", "parking area", "parking lots"),
    "desert": ("sand dunes", "dunes", "arid land"),
    "beach": ("seaside", "beaches"),
    "storage_tanks": ("fuel depot", "tank yard"),
}
CLASS_SYNONYMS: dict[str, tuple[str, ...]] = {
    c: phrases + _MORE_CLASS_PHRASES.get(c, ()) for c, phrases in CLASS_PHRASES.items()
}
_KIND_NAMES: dict[str, tuple[str, ...]] = {
    "airplane": ("airplane", "airplanes", "plane", "planes", "aircraft", "aeroplane", "aeroplanes"),
    "boat": ("boat", "boats"),
    "bridge": ("bridge", "bridges"),
    "building": ("building", "buildings", "house", "houses"),
    "car": ("car", "cars"),
    "ship": ("ship", "ships", "vessel", "vessels"),
    "storage_tank": ("storage tank", "storage tanks", "oil tank", "oil tanks", "tank", "tanks"),
    "tree": ("tree", "trees"),
    "truck": ("truck", "trucks", "lorry", "lorries"),
    "umbrella": ("umbrella", "umbrellas", "parasol", "parasols"),
}
KIND_WORDS: dict[str, str] = {w: k for k, words in _KIND_NAMES.items() for w in words}
_SPELLING = {"gray": "grey", "centre": "center", "middle": "center", "upper": "top",
             "lower": "bottom"}  # fmt: skip


def _alternation(words) -> str:
    return "|".join(sorted(map(re.escape, words), key=len, reverse=True))  # longest first


_CLASS_RE = re.compile(rf"\b({_alternation(p for ps in CLASS_SYNONYMS.values() for p in ps)})\b")
_PHRASE_CLASS = {p: c for c, ps in CLASS_SYNONYMS.items() for p in ps}
_KIND, _COL = _alternation(KIND_WORDS), _alternation(COLOURS)
_NUM, _POS = _alternation([*NUMBER_WORDS, "no"]) + r"|\d+", _alternation(POSITIONS)
_MENTION = re.compile(
    rf"\b(?:(?P<num>{_NUM}) )?(?P<tint>(?:(?:{_COL})(?:,? and |, | or | ))*(?:{_COL}) )?"
    rf"(?P<kind>{_KIND})\b"
)
_COUNT_WORDS = {w: i for i, w in enumerate(NUMBER_WORDS)} | {"no": 0}  # "no ships"
_LINK = "is|are|sits|sit|lies|lie|lying|located|parked|moored|standing"
_PLACE = re.compile(
    rf"\b(?:(?P<col>{_COL}) )?(?P<kind>{_KIND})(?: (?:{_LINK}))? (?:in|at|on) the (?P<pos>{_POS})\b"
)
_DETERMINERS = {"a", "an", "the"}
_FUNCTION = _DETERMINERS | {"of", "with", "and", "in", "at", "on", "from", "by", "to", "near",
                            "is", "are", "showing", "containing", "seen"}  # fmt: skip
_DANGLING = _FUNCTION | set(NUMBER_WORDS) | set(COLOURS)  # a count or colour missing its noun
_TEMPLATE_WORDS = """satellite image aerial view scene distinct objects resolution showing seen
above overhead empty containing remote sensing earth's surface picture taken sky some land area
m km cm gsd rgb nir msi sar sentinel landsat""".split()
_PHRASES = (*_PHRASE_CLASS, *KIND_WORDS, *COLOURS, *NUMBER_WORDS, *POSITIONS, *_TEMPLATE_WORDS)
VOCABULARY = frozenset(w for p in _PHRASES for w in re.findall(r"[a-z0-9']+", p)) | _FUNCTION
W_CLASS, W_KIND, W_COUNT, W_COLOUR, W_POSITION, W_ABSENT = 3.0, 1.0, 1.0, 0.5, 0.75, 0.5
_TAU = 4.0  # true weight at which informativeness is ~63% of its maximum


@dataclass(frozen=True)
class Claim:
    """One checkable statement read from a caption, with its weight and truth."""

    weight: float
    true: bool
    reason: str


@dataclass(frozen=True)
class Assessment:
    """A caption's true quality in [0, 1] and the claims and faults that decided it."""

    score: float
    reasons: tuple[str, ...]
    false_claims: tuple[str, ...] = ()  # the reasons that are false claims


def normalise(text: str) -> str:
    """Lower case, hyphens and underscores as spaces, one spelling per word."""
    text = re.sub(r"[-_/]", " ", text.lower())
    text = re.sub(rf"\b({'|'.join(_SPELLING)})\b", lambda m: _SPELLING[m.group(1)], text)
    return " ".join(text.split())


def _class_claims(text: str, scene: str) -> tuple[list[Claim], str]:
    """Class claims, and the text with class phrases masked (`tank farm` is not a tank)."""
    found = {_PHRASE_CLASS[m.group(1)] for m in _CLASS_RE.finditer(text)}
    claims = [Claim(W_CLASS, True, f"class {scene}")] if scene in found else []
    claims += [Claim(W_CLASS, False, f"wrong class {c}") for c in sorted(found - {scene})]
    return claims, _CLASS_RE.sub(" # ", text)


def _object_claims(text: str, ann: TileAnnotation) -> list[Claim]:
    """Claims about kinds, counts and colours: `three red cars`, `no ships`, `a boat`."""
    counts, implied = ann.counts(), IMPLIED_KINDS.get(ann.scene_class, frozenset())
    tints = {(o.kind, o.color) for o in ann.objects}
    claims: dict[str, Claim] = {}  # keyed by reason: a repeated claim counts once
    for m in _MENTION.finditer(text):
        kind, num = KIND_WORDS[m.group("kind")], m.group("num")
        n = None if num is None else int(num) if num.isdigit() else _COUNT_WORDS[num]
        if kind in implied:
            continue
        if n == 0:
            ok = kind not in counts
            reason = f"absent {kind}" if ok else f"wrong absence {kind}"
            claims.setdefault(reason, Claim(W_ABSENT, ok, reason))
            continue
        ok = kind in counts
        reason = f"has {kind}" if ok else f"no {kind} here"
        claims.setdefault(reason, Claim(W_KIND, ok, reason))
        if n is not None:
            ok = counts.get(kind) == n
            reason = f"count {kind}={n}" if ok else f"wrong count {kind}={n}"
            claims.setdefault(reason, Claim(W_COUNT, ok, reason))
        for colour in re.findall(_COL, m.group("tint") or ""):
            ok = (kind, colour) in tints
            reason = f"{colour} {kind}" if ok else f"no {colour} {kind}"
            claims.setdefault(reason, Claim(W_COLOUR, ok, reason))
    return list(claims.values())


def _position_claims(text: str, ann: TileAnnotation) -> list[Claim]:
    """Claims like `a red car in the top left`: some object of that kind (and colour) is there."""
    claims: dict[str, Claim] = {}
    for m in _PLACE.finditer(text):
        kind, colour, pos = KIND_WORDS[m.group("kind")], m.group("col"), m.group("pos")
        ok = any(
            o.kind == kind and o.position == pos and colour in (None, o.color) for o in ann.objects
        )
        what = f"{colour} {kind}" if colour else kind
        reason = f"{what} at {pos}" if ok else f"no {what} at {pos}"
        claims.setdefault(reason, Claim(W_POSITION, ok, reason))
    return list(claims.values())


def _is_noise(word: str) -> bool:
    """A token no captioner means: not a known word, and no vowel or a long consonant run."""
    if word in VOCABULARY or not word.isalpha() or len(word) < 2:
        return False
    return not re.search("[aeiouy]", word) or bool(re.search("[^aeiouy]{5}", word))


def _form(text: str) -> tuple[float, list[str]]:
    """A factor in (0, 1] for broken text, and why."""
    words, factor, why = re.findall(r"[a-z0-9']+", text), 1.0, []
    noise = [w for w in words if _is_noise(w)]
    if noise:
        factor *= 0.8 ** len(noise)
        why.append(f"garbled: {len(noise)} non-words")
    pairs = zip(words, words[1:], strict=False)
    disfluent = sum(a in _DETERMINERS and b in _FUNCTION for a, b in pairs)
    if disfluent:
        factor *= 0.85**disfluent
        why.append(f"disfluent: {disfluent} broken word pairs")
    if text and text[-1] not in ".!?":
        last = words[-1] if words else ""
        cut_word = last not in VOCABULARY and any(
            v.startswith(last) and v != last for v in VOCABULARY
        )
        if not words or last in _DANGLING or cut_word:
            factor *= 0.7
            why.append("ends mid-phrase")
        else:
            factor *= 0.95
            why.append("no final stop")
    return factor, why


def assess_caption(text: str, annotation: TileAnnotation) -> Assessment:
    """Score a caption's claims against a tile's ground truth, with the reasons."""
    lowered = normalise(text)
    claims, masked = _class_claims(lowered, annotation.scene_class)
    claims += _object_claims(masked, annotation) + _position_claims(masked, annotation)
    true_w = sum(c.weight for c in claims if c.true)
    false_w = sum(c.weight for c in claims if not c.true)
    precision = true_w / (true_w + false_w) if claims else 1.0
    content = precision**2 * (0.2 + 0.8 * (1.0 - math.exp(-true_w / _TAU)))
    form, faults = _form(lowered)
    reasons = [c.reason for c in claims] or ["states nothing checkable"]
    score = round(min(1.0, max(0.0, content * form)), 6)
    false = tuple(c.reason for c in claims if not c.true)
    return Assessment(score, tuple(reasons + faults), false)


def caption_quality(text: str, annotation: TileAnnotation) -> float:
    """The ground-truth quality of a caption in [0, 1]."""
    return assess_caption(text, annotation).score


def ranking(scores: Sequence[float], reason: str) -> Ranking:
    """Best first; equal scores keep input order."""
    order = tuple(sorted(range(len(scores)), key=lambda i: (-scores[i], i)))
    return Ranking(order, tuple(scores), reason)


# Injected errors (captions.noise) on labelled images without ground truth: what each kind of
# error leaves of a caption's truth. A clean candidate of such an image is the captioner's text
# for its class and counts as right; class-changing errors state a falsehood (0); a generic
# caption states nothing checkable (0.2, as `assess_caption` scores it); broken text below 0.5.
NOISE_SUFFIX = "+noise/v1"  # appended to the captioner id of a corrupted candidate
KNOWN_QUALITY = {"clean": 1.0, "other_class_caption": 0.0, "class_swap": 0.0, "generic": 0.2,
                 "truncated": 0.4, "garbled": 0.3}  # fmt: skip


def injected_quality(candidate: Candidate) -> float:
    """The true quality of a labelled image's candidate from its injection record."""
    if not candidate.captioner_id.endswith(NOISE_SUFFIX):
        return KNOWN_QUALITY["clean"]
    return KNOWN_QUALITY[(candidate.degradation or "").split(":", 1)[0]]


class OracleJudge:
    """Ranks candidates by their true quality: SynthRS ground truth, or, on a labelled pool
    with injected errors, the injection record (an accurate judge, as a human would be)."""

    id = "oracle/v1"

    def rank(self, sample: SampleView, candidates: Sequence[Candidate]) -> Ranking | None:
        """Rank by true quality; None where it is unknown (no annotation, no injection)."""
        if sample.annotation is not None:
            scores = [caption_quality(c.text, sample.annotation) for c in candidates]
            return ranking(scores, "ground truth")
        if not any(c.captioner_id.endswith(NOISE_SUFFIX) for c in candidates):
            return None  # without injected errors the truth of a real image is unknown
        return ranking([injected_quality(c) for c in candidates], "injected-error record")


# Label names and their synonyms: SynthRS classes and RSSCN7's, equivalent classes sharing
# words (farmland/field, industrial/industry, parking_lot/parking) so neither reads as the
# other's contradiction. User classes come in through the judge's `synonyms` argument.
LABEL_SYNONYMS: dict[str, tuple[str, ...]] = CLASS_SYNONYMS | {
    "farmland": CLASS_SYNONYMS["farmland"] + ("field", "fields"),
    "industrial": CLASS_SYNONYMS["industrial"] + ("industry",),
    "parking_lot": CLASS_SYNONYMS["parking_lot"] + ("parking",),
    "grass": ("grass", "grassland", "grasslands", "meadow", "meadows", "lawn", "pasture"),
    "field": ("field", "fields", "farmland", "cropland", "farm fields", "crop fields"),
    "industry": ("industry", "industrial", "industrial area", "factory", "factories"),
    "river_lake": ("river", "lake", "rivers", "lakes", "pond", "reservoir", "stream"),
    "parking": ("parking", "parking lot", "parking lots", "car park", "parking area"),
}
_STOP = frozenset(
    """the and with from this that there here image images picture photo view
some many several are has have its their which for into onto over under""".split()
)


def _mentions(text: str, phrases: Sequence[str]) -> bool:
    return any(re.search(rf"\b{re.escape(p)}\b", text) for p in phrases)


class LabelConsistencyJudge:
    """A caption naming the known label beats one naming no class, which beats one naming
    another class; within a tier, more distinct content words rank higher."""

    id = "label-consistency/v1"

    def __init__(self, synonyms: dict[str, Sequence[str]] | None = None) -> None:
        extra = {k.lower(): tuple(normalise(p) for p in v) for k, v in (synonyms or {}).items()}
        self.synonyms = LABEL_SYNONYMS | extra

    def phrases(self, label: str) -> tuple[str, ...]:
        """How captions may name `label` (its readable name when it is not in the table)."""
        key = label.strip().lower()
        return self.synonyms.get(key, (normalise(key),))

    def score(self, label: str, text: str) -> float:
        """Tier (2 consistent, 1 names no class, 0 inconsistent) plus specificity below 1."""
        text, own = normalise(text), self.phrases(label)
        others = {p for k, ps in self.synonyms.items() for p in ps} - set(own)
        tier = 2.0 if _mentions(text, own) else 0.0 if _mentions(text, sorted(others)) else 1.0
        content = {w for w in re.findall(r"[a-z]+", text) if len(w) >= 3 and w not in _STOP}
        return tier + min(len(content), 24) / 25.0

    def rank(self, sample: SampleView, candidates: Sequence[Candidate]) -> Ranking | None:
        """Rank by label consistency, then specificity; None without a label."""
        if not sample.label:
            return None
        scores = [self.score(sample.label, c.text) for c in candidates]
        return ranking(scores, f"label consistency with {sample.label!r}")
