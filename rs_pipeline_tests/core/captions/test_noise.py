"""Error injection: a share of clean candidates replaced by errors that record what broke."""

import pytest

from rs_pipeline.core.captions.base import Candidate
from rs_pipeline.core.captions.noise import KNOWN_QUALITY, SUFFIX, NoiseInjector, Subject
from rs_pipeline.core.captions.oracle import caption_quality
from rs_pipeline.core.config import ConfigError, NoiseConfig, config_from_dict
from rs_pipeline.core.sources.synthrs import SynthRSSource, TileAnnotation

CAPS = {
    "field": ["many green farmland pieces are next to each other", "an aerial view of a field."],
    "forest": ["a dense forest with many green trees", "an aerial view of a forest."],
    "parking": ["many cars are parked in a parking lot", "an aerial view of a parking lot."],
}


def labelled_pool(per_class: int = 20):
    subjects, cands = {}, []
    for label, texts in CAPS.items():
        for i in range(per_class):
            sid = f"{label}-{i}"
            subjects[sid] = Subject(label)
            cands += [Candidate(sid, "retrieval:rs/v1", t) for t in texts]
    return subjects, cands


def test_noise_rate_is_the_share_of_clean_candidates_replaced():
    subjects, cands = labelled_pool(per_class=100)
    out, rep = NoiseInjector(NoiseConfig(rate=0.5)).apply(subjects, cands)
    assert len(out) == len(cands) == rep.eligible
    corrupted = [o for o in out if o.candidate.captioner_id.endswith(SUFFIX)]
    assert len(corrupted) == rep.corrupted
    assert 0.44 < rep.corrupted / rep.eligible < 0.56
    assert rep.class_changing + rep.as_dict()["class_keeping"] == rep.corrupted


def test_each_corrupted_candidate_records_what_was_broken_and_its_true_quality():
    subjects, cands = labelled_pool()
    out, _ = NoiseInjector(NoiseConfig(rate=1.0)).apply(subjects, cands)
    for item, clean in zip(out, cands, strict=True):
        kind = item.candidate.degradation.split(":", 1)[0]
        assert item.quality == KNOWN_QUALITY[kind]
        assert item.candidate.captioner_id == clean.captioner_id + SUFFIX
        assert item.candidate.sample_id == clean.sample_id
        if kind in ("other_class_caption", "class_swap"):
            label = subjects[clean.sample_id].label
            assert item.candidate.degradation.startswith(f"{kind}: {label}->")
            other = item.candidate.degradation.split("->")[1]
            assert other != label
        if kind == "other_class_caption":  # a real caption of another scene of the pool
            assert item.candidate.text in CAPS[other]


def test_class_swap_replaces_the_class_phrase_of_the_clean_caption():
    subjects = {"s": Subject("forest")}
    cands = [Candidate("s", "template/v1", "an aerial view of a forest.")]
    cfg = NoiseConfig(rate=1.0, mix={"class_swap": 1.0})
    (item,), rep = NoiseInjector(cfg).apply(subjects, cands)
    assert rep.by_kind == {"class_swap": 1}
    assert "forest" not in item.candidate.text and item.candidate.text.startswith("an aerial view")


def test_clean_candidates_of_labelled_images_are_known_good_and_unlabelled_ones_untouched():
    subjects, cands = labelled_pool()
    subjects["chip"] = Subject(None)
    cands.append(Candidate("chip", "template/v1", "a sentinel-2 image."))
    out, rep = NoiseInjector(NoiseConfig(rate=0.0)).apply(subjects, cands)
    assert rep.corrupted == 0 and rep.eligible == len(cands) - 1
    assert [o.quality for o in out[:-1]] == [1.0] * (len(cands) - 1)
    assert out[-1].quality is None and out[-1].candidate == cands[-1]


def test_injection_is_deterministic_and_depends_on_the_seed():
    subjects, cands = labelled_pool()
    a, _ = NoiseInjector(NoiseConfig(rate=0.5)).apply(subjects, cands)
    b, _ = NoiseInjector(NoiseConfig(rate=0.5)).apply(subjects, cands)
    c, _ = NoiseInjector(NoiseConfig(rate=0.5, seed=1)).apply(subjects, cands)
    assert a == b and a != c


def test_synthrs_noise_uses_degraders_and_keeps_class_changing_apart():
    source = SynthRSSource("synthrs", count=12, size=64, seed=3)
    subjects, cands = {}, []
    for item in source.iter_items("b"):
        sid = item.uri
        subjects[sid] = Subject(item.label, TileAnnotation.from_json(item.annotation_json))
        cands.append(Candidate(sid, "template/v1", f"a satellite image of {item.label}."))
    cfg = NoiseConfig(rate=1.0, synthrs_mix={"wrong_class": 1.0, "wrong_count": 1.0})
    out, rep = NoiseInjector(cfg).apply(subjects, cands)
    assert set(rep.by_kind) <= {"wrong_class", "wrong_count"}
    assert rep.class_changing == rep.by_kind["wrong_class"]
    for o in out:  # SynthRS quality comes from the oracle in the stage, not from a table
        assert o.quality is None
        assert caption_quality(o.candidate.text, subjects[o.candidate.sample_id].annotation) < 1


def test_unknown_noise_kinds_fail_naming_the_allowed_ones():
    with pytest.raises(ConfigError, match="allowed"):
        config_from_dict({"captions": {"noise": {"rate": 0.5, "mix": {"typo": 1.0}}}})
    with pytest.raises(ValueError, match="synthrs_mix"):
        NoiseInjector(NoiseConfig(rate=0.5, synthrs_mix={"typo": 1.0}))


def test_oracle_judge_ranks_a_labelled_pool_by_the_injection_record_and_only_with_one():
    from rs_pipeline.core.captions.base import SampleView
    from rs_pipeline.core.captions.oracle import OracleJudge
    from rs_pipeline_tests.factories import noise_rgb

    view = SampleView("s", noise_rgb(8), label="field")
    clean = Candidate("s", "template/v1", "an aerial view of a field.")
    swapped = Candidate("s", "template/v1" + SUFFIX, "an aerial view of a forest.",
                        degradation="class_swap: field->forest")  # fmt: skip
    generic = Candidate("s", "retrieval:rs/v1" + SUFFIX, "a remote sensing image.",
                        degradation="generic")  # fmt: skip
    ranking = OracleJudge().rank(view, [swapped, clean, generic])
    assert ranking.scores == (0.0, 1.0, 0.2) and ranking.order == (1, 2, 0)
    assert OracleJudge().rank(view, [clean, clean]) is None  # no record: truth is unknown
