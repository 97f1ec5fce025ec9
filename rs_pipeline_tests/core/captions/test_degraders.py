"""SynthRS degraders: one faithful caption, then variants that each break one recorded fact."""

import re

import pytest

from rs_pipeline.core.captions.base import SampleView
from rs_pipeline.core.captions.degraders import DEGRADATIONS, GENERIC, SynthRSDegrader
from rs_pipeline.core.captions.facts import CLASS_PHRASES
from rs_pipeline.core.captions.templates import article
from rs_pipeline.core.sources.synthrs import render_tile
from rs_pipeline.core.vocabulary import SCENE_CLASSES, noun, number_word


def view(seed: int, cls: str) -> SampleView:
    image, ann = render_tile(seed, cls)
    return SampleView(f"{cls}-{seed}", image, label=cls, annotation=ann)


def phrase(cls: str) -> str:
    return CLASS_PHRASES[cls][0]


def check_change(kind: str, change: str, text: str, faithful: str) -> None:
    """The recorded change is visible in the degraded text."""
    if kind == "wrong_count":
        obj, old, new = re.fullmatch(r"(\w+) (\d+)->(\d+)", change).groups()
        assert old != new and f"{number_word(int(new))} " in text and noun(obj, int(new)) in text
    elif kind == "hallucinated_object":
        assert noun(change, 1) in text and noun(change, 1) not in faithful
    elif kind == "wrong_class":
        old, new = change.split("->")
        swapped = faithful.replace(article(phrase(old)), article(phrase(new)), 1)
        assert phrase(new) in text and text == swapped  # only the class changed
    elif kind == "wrong_position":
        colour, obj, old, new = re.fullmatch(r"(\w+) (\w+) (.+)->(.+)", change).groups()
        assert re.search(rf"{colour} {noun(obj, 1)} (is )?\w+ the {new}\b", text)
    elif kind == "wrong_colour":
        obj, old, new = re.fullmatch(r"(\w+) ([\w/]+)->(\w+)", change).groups()
        assert new not in old.split("/") and re.search(rf"\b{new} {noun(obj, 1)}", text)
    elif kind == "truncated":
        before, after = map(int, re.fullmatch(r"(\d+)->(\d+) chars", change).groups())
        assert (before, after) == (len(faithful), len(text)) and faithful.startswith(text)
    elif kind == "garbled":
        n = int(re.match(r"(\d+) tokens shuffled/replaced", change).group(1))
        words = zip(text.split(), faithful.rstrip(".").split(), strict=True)
        changed = sum(a != b for a, b in words)
        assert n == changed >= 1


def test_each_degradation_records_what_it_changed():
    for kind in DEGRADATIONS:
        deg, seen = SynthRSDegrader(kinds=(kind,), per_image=1, seed=3), 0
        for seed in range(4):
            for cls in SCENE_CLASSES:
                faithful, *bad = deg.caption([view(seed, cls)])
                for c in bad:
                    assert c.degradation.split(":")[0] == kind and c.text != faithful.text
                    if kind == "generic":
                        assert c.degradation == "generic" and c.text in GENERIC
                    else:
                        check_change(kind, c.degradation.split(": ", 1)[1], c.text, faithful.text)
                    seen += 1
        assert seen >= 12, kind  # applies to most tiles


def test_faithful_caption_comes_first_then_per_image_degraded_ones():
    deg = SynthRSDegrader(per_image=3, seed=1)
    kinds = set()
    for seed in range(5):
        for cls in SCENE_CLASSES:
            cands = deg.caption([view(seed, cls)])
            assert cands[0].degradation is None
            assert cands[0].captioner_id == "degrader/v1:faithful"
            assert len(cands) == 4 and len({c.text for c in cands}) == 4
            assert all(c.captioner_id == "degrader/v1" and c.degradation for c in cands[1:])
            kinds |= {c.degradation.split(":")[0] for c in cands[1:]}
    assert kinds == set(DEGRADATIONS)


def test_inapplicable_degradation_is_replaced_by_an_applicable_one():
    empty = view(5, "desert")  # no objects: nothing to count, colour or move
    assert not empty.annotation.objects
    deg = SynthRSDegrader(kinds=("wrong_count", "wrong_colour", "wrong_class"), per_image=1)
    _, bad = deg.caption([empty])
    assert bad.degradation.startswith("wrong_class: desert->")
    assert SynthRSDegrader(kinds=("wrong_count",)).caption([empty])[1:] == []


def test_per_image_beyond_the_kinds_gives_distinct_variants_of_a_kind():
    _, *bad = SynthRSDegrader(kinds=("wrong_count",), per_image=3).caption([view(3, "parking_lot")])
    assert len(bad) == 3 and len({c.text for c in bad}) == 3
    assert all(c.degradation.startswith("wrong_count: car 8->") for c in bad)


def test_samples_without_annotation_get_no_candidates():
    image, _ = render_tile(0, "lake")
    assert SynthRSDegrader().caption([SampleView("u", image, label="lake")]) == []


@pytest.mark.parametrize("seed", [0, 1])
def test_same_seed_same_candidates(seed):
    views = [view(s, c) for s in range(2) for c in SCENE_CLASSES]
    a = SynthRSDegrader(seed=seed).caption(views)
    assert a == SynthRSDegrader(seed=seed).caption(views)
    assert a != SynthRSDegrader(seed=seed + 7).caption(views)
    # One image's candidates do not depend on the rest of the batch.
    assert SynthRSDegrader(seed=seed).caption(views[3:4]) == [
        c for c in a if c.sample_id == views[3].sample_id
    ]


def test_unknown_degradation_is_rejected_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="blurry") as err:
        SynthRSDegrader(kinds=("generic", "blurry"))
    assert all(k in str(err.value) for k in DEGRADATIONS)
