"""`core.seeds` reproduces the values every call site computed before it had one home.

The pinned numbers were computed with the formulas each site used to inline; a change here
would move SynthRS tiles, caption families, degradations, noise, questions or splits.
"""

import hashlib

import pytest

from rs_pipeline.core.seeds import seed_from, unit_from


def test_synthrs_tile_seeds_are_the_53_bit_prefix():
    # sources/synthrs.py: "\x1f"-joined, first 8 bytes big-endian, & ((1 << 53) - 1)
    assert seed_from("synthrs-tile", 3, "harbor", bits=53) == 4379256421329478
    assert seed_from("synthrs-item", 0, "b1", 7, bits=53) == 651495144427398


def test_caption_seeds_are_the_full_64_bit_prefix():
    # captions/templates.py stable_int (families, degrader and noise draws)
    assert seed_from("template-families", 0, "abc") == 3156696535825666167
    assert seed_from("degrader", 2, "s1") == 16016831861458733688


def test_vlm_batch_seed_is_the_top_63_bits():
    # captions/vlm.py _batch_seed: "\x1f".join([seed, *sample_ids]) ... >> 1
    assert seed_from(1, "a", "b") >> 1 == 8130363559398102941


def test_pipe_separated_seeds_and_units():
    # captions/retrieval.py, pairs/vqa.py: f"{seed}|{sample_id}"; pairs/split.py: / 2**64
    assert seed_from(0, "img1", sep="|") == 8007418626833241538
    assert unit_from(0, "block:1:2", sep="|") == 0.8190641338149492


def test_units_are_the_64_bit_prefix_over_2_to_the_64():
    # pairs/stage.py is_judged, captions/noise.py _unit
    assert unit_from("judged", 0, "s9") == 0.8218472928867142
    assert unit_from("noise-rate", 0, "s", "template/v1", "a lake.") == 0.8427934181467981


def test_matches_the_inline_formula_for_any_parts():
    for i in range(200):
        parts = (i, f"sample-{i * 7919}", "x")
        digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
        word = int.from_bytes(digest[:8], "big")
        assert seed_from(*parts) == word
        assert seed_from(*parts, bits=53) == word & ((1 << 53) - 1)
        assert unit_from(*parts) == word / 2**64


@pytest.mark.parametrize("bits", [0, 65])
def test_bits_out_of_range_fail(bits):
    with pytest.raises(ValueError, match="bits"):
        seed_from("x", bits=bits)
