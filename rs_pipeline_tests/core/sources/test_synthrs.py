"""SynthRS renders deterministic, plausible tiles whose annotations match what was drawn."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import struct
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from rs_pipeline.core.sources.synthrs import (
    PALETTE,
    SCENE_CLASSES,
    SynthRSSource,
    TileAnnotation,
    encode_png,
    grid_position,
    render_tile,
)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _sample(n_per_class: int = 8) -> list[TileAnnotation]:
    return [render_tile(seed, c)[1] for c in SCENE_CLASSES for seed in range(n_per_class)]


def test_scene_classes_include_the_twelve_required_ones():
    required = {"farmland", "forest", "lake", "river", "residential", "industrial", "airport"}
    required |= {"harbor", "parking_lot", "desert", "beach", "storage_tanks"}
    assert required <= set(SCENE_CLASSES)


def test_same_seed_renders_identical_bytes():
    for scene_class in SCENE_CLASSES:
        first_image, first_ann = render_tile(7, scene_class)
        second_image, second_ann = render_tile(7, scene_class)
        assert encode_png(first_image) == encode_png(second_image)
        assert first_ann.to_json() == second_ann.to_json()


def test_different_seeds_give_visibly_different_tiles_of_one_class():
    for scene_class in SCENE_CLASSES:
        a, _ = render_tile(1, scene_class)
        b, _ = render_tile(2, scene_class)
        assert np.abs(_pixels(a) - _pixels(b)).mean() > 3, scene_class


@pytest.mark.parametrize("scene_class", SCENE_CLASSES)
@pytest.mark.parametrize("size", [16, 64, 96])
def test_every_scene_class_renders_rgb_tile_of_requested_size(scene_class, size):
    image, annotation = render_tile(3, scene_class, size)
    assert image.mode == "RGB" and image.size == (size, size)
    assert annotation.scene_class == scene_class and annotation.size == size
    assert _pixels(image).std() > 2  # a texture, not a flat fill


def test_unknown_class_error_names_allowed_classes():
    with pytest.raises(ValueError, match="unknown scene class 'volcano'") as err:
        render_tile(0, "volcano")
    assert all(c in str(err.value) for c in SCENE_CLASSES)


def test_out_of_range_size_is_rejected_with_the_allowed_range():
    with pytest.raises(ValueError, match=r"\[16, 1024\]"):
        render_tile(0, "lake", 8)


def test_annotation_json_round_trips():
    for annotation in _sample(3):
        text = annotation.to_json()
        assert TileAnnotation.from_json(text) == annotation
        assert TileAnnotation.from_json(text).to_json() == text


def test_annotation_json_is_canonical_with_sorted_keys():
    _, annotation = render_tile(5, "parking_lot")
    data = json.loads(annotation.to_json())
    assert annotation.to_json() == json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert set(data) == {"scene_class", "objects", "geo", "seed", "size"}


def test_counts_give_objects_per_kind_sorted_by_kind():
    for annotation in _sample(4):
        counts = annotation.counts()
        assert list(counts) == sorted(counts)
        assert counts == dict(sorted(Counter(o.kind for o in annotation.objects).items()))


def test_object_positions_match_their_grid_cell():
    assert grid_position(0.1, 0.1) == "top left"
    assert grid_position(0.5, 0.5) == "center"
    assert grid_position(0.9, 0.5) == "right"
    assert grid_position(0.5, 0.99) == "bottom"
    for annotation in _sample():
        for obj in annotation.objects:
            assert 0 < obj.x < 1 and 0 < obj.y < 1
            assert obj.position == grid_position(obj.x, obj.y)


def test_objects_use_palette_colours_and_positive_sizes():
    for annotation in _sample():
        for obj in annotation.objects:
            assert obj.color in PALETTE and obj.size_px >= 2


def test_no_object_centre_lies_inside_another_object():
    for annotation in _sample():
        objs = annotation.objects
        for i, a in enumerate(objs):
            for b in objs[i + 1 :]:
                dist = math.hypot(a.x - b.x, a.y - b.y) * annotation.size
                assert dist > min(a.size_px, b.size_px) / 2, (annotation.scene_class, a, b)


def test_every_object_shows_its_exact_palette_colour_within_its_extent():
    for scene_class in SCENE_CLASSES:
        for seed in range(6):
            image, annotation = render_tile(seed, scene_class)
            pixels = np.asarray(image)
            for obj in annotation.objects:
                r, cx, cy = max(1, obj.size_px // 2), int(obj.x * 64), int(obj.y * 64)
                window = pixels[max(0, cy - r) : cy + r + 1, max(0, cx - r) : cx + r + 1]
                assert (window == PALETTE[obj.color]).all(axis=-1).any(), (scene_class, obj)


def test_object_counts_vary_within_a_class():
    for scene_class in ("parking_lot", "storage_tanks", "lake", "residential"):
        counts = {len(render_tile(seed, scene_class)[1].objects) for seed in range(30)}
        assert len(counts) >= 3, scene_class


def test_geo_metadata_is_plausible():
    for annotation in _sample(3):
        geo = annotation.geo
        assert 0.3 <= geo.gsd_m <= 2.0
        assert geo.sensor == "SynthRS-aerial"
        assert -90 <= geo.lat <= 90 and -180 <= geo.lon <= 180
        assert 2015 < dt.date.fromisoformat(geo.acquisition_date).year < 2026


def test_encoded_png_has_only_image_chunks_and_decodes_to_the_same_pixels():
    image, _ = render_tile(11, "harbor")
    data = encode_png(image)
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        chunks.append(kind.decode())
        offset += 12 + length
    assert set(chunks) == {"IHDR", "IDAT", "IEND"}
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(image))


def test_source_yields_count_items_with_labels_and_annotations():
    items = list(SynthRSSource("synth", 15, size=48, seed=4).iter_items("b01"))
    assert [it.uri for it in items] == [f"synthrs://synth/b01/{i:06d}" for i in range(15)]
    for item in items:
        annotation = TileAnnotation.from_json(item.annotation_json)
        assert item.source == "synth" and item.source_kind == "synthrs"
        assert item.label == annotation.scene_class and item.geo == annotation.geo
        assert Image.open(io.BytesIO(item.data)).size == (48, 48)


def test_same_seed_and_batch_yield_identical_items():
    a = list(SynthRSSource("s", 12, seed=9).iter_items("b"))
    b = list(SynthRSSource("s", 12, seed=9).iter_items("b"))
    assert a == b


def test_different_batches_give_different_tiles():
    source = SynthRSSource("s", 12, seed=9)
    first = {it.data for it in source.iter_items("batch-1")}
    second = {it.data for it in source.iter_items("batch-2")}
    assert len(first) == 12 and not first & second


def test_different_source_seeds_give_different_tiles():
    a = {it.data for it in SynthRSSource("s", 6, seed=1).iter_items("b")}
    b = {it.data for it in SynthRSSource("s", 6, seed=2).iter_items("b")}
    assert not a & b


def test_classes_are_balanced_across_a_batch():
    labels = Counter(it.label for it in SynthRSSource("s", 30, size=16).iter_items("b"))
    assert set(labels) == set(SCENE_CLASSES)
    assert max(labels.values()) - min(labels.values()) <= 1


def test_longer_batch_extends_a_shorter_one():
    short = list(SynthRSSource("s", 5, size=16).iter_items("b"))
    long = list(SynthRSSource("s", 20, size=16).iter_items("b"))
    assert long[:5] == short


def test_source_restricted_to_some_classes_yields_only_those():
    source = SynthRSSource("s", 9, size=16, classes=("lake", "desert", "airport"))
    assert Counter(it.label for it in source.iter_items("b")) == {
        "lake": 3,
        "desert": 3,
        "airport": 3,
    }


def test_source_rejects_unknown_classes_naming_allowed_ones():
    with pytest.raises(ValueError, match="volcano") as err:
        SynthRSSource("s", 3, classes=("lake", "volcano"))
    assert "storage_tanks" in str(err.value)


def test_the_world_draws_only_on_the_shared_vocabulary():
    from rs_pipeline.core import vocabulary as v
    from rs_pipeline.core.captions.facts import CLASS_PHRASES
    from rs_pipeline.core.captions.oracle import KIND_WORDS
    from rs_pipeline.core.sources import synthrs, synthrs_scenes

    assert SCENE_CLASSES is v.SCENE_CLASSES
    assert tuple(synthrs._SCENES) == tuple(synthrs_scenes.BACKGROUNDS) == SCENE_CLASSES
    assert tuple(CLASS_PHRASES) == SCENE_CLASSES  # degraders draw another class in this order
    rule_kinds = {rule[0] for _, rules in synthrs._SCENES.values() for rule in rules}
    assert rule_kinds == set(synthrs._SHAPES) == set(KIND_WORDS.values()) == set(v.OBJECT_KINDS)
    rule_colours = {c for _, rules in synthrs._SCENES.values() for rule in rules for c in rule[3]}
    assert rule_colours <= set(v.COLOURS) and tuple(PALETTE) == v.COLOURS
    assert sorted(v.POSITIONS) == sorted(p for row in v.POSITION_GRID for p in row)
