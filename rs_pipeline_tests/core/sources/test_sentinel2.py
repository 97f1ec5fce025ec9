import io

import numpy as np
from PIL import Image

from rs_pipeline.core.sources.sentinel2 import Sentinel2Source


def test_sentinel2_chips_are_true_colour_rgb_with_10m_gsd():
    items = list(Sentinel2Source(chip_size=64, max_chips=5).iter_items("any"))
    assert len(items) == 5
    for item in items:
        image = Image.open(io.BytesIO(item.data))
        assert image.mode == "RGB" and image.size == (64, 64)
        assert item.geo.gsd_m == 10.0 and item.geo.sensor == "Sentinel-2 MSI"
        assert item.label is None  # an unlabelled pool
    pixels = np.asarray(Image.open(io.BytesIO(items[0].data)))
    assert pixels.std() > 1.0  # a real scene, not a flat fill


def test_sentinel2_chips_are_distinct_and_deterministic():
    first = [i.data for i in Sentinel2Source(max_chips=20).iter_items("a")]
    again = [i.data for i in Sentinel2Source(max_chips=20).iter_items("a")]
    assert first == again
    assert len(set(first)) == 20
