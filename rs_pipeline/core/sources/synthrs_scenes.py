"""SynthRS scene backgrounds: one numpy painter per scene class, plus its placement zones.

Each painter returns float RGB (size, size, 3) and the zones where that class's objects may go.
Kept apart from `synthrs.py` (objects, annotations, the source) so each module holds one idea.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image

from rs_pipeline.core.vocabulary import COLOURS

# Object colours, one RGB per name of COLOURS in its order: captions name them, so they are
# exact, never jittered.
PALETTE: dict[str, tuple[int, int, int]] = dict(zip(COLOURS, (
    (196, 48, 40), (238, 238, 232), (138, 138, 136),  # red, white, grey
    (40, 82, 178), (52, 136, 56), (232, 198, 40),  # blue, green, yellow
    (26, 26, 30), (124, 84, 48), (236, 124, 30),  # black, brown, orange
), strict=True))  # fmt: skip

# ---- background textures: each returns float RGB (size, size, 3) and placement zones ----------
# A zone is a boolean mask (objects go anywhere inside it) or a list of (x, y, angle) slots
# laid out so that objects on them cannot collide (stalls, lots, berths).
Zones = dict[str, np.ndarray | list[tuple[float, float, float]]]


@lru_cache(maxsize=8)
def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    xx, yy = np.meshgrid(c, c)
    xx.flags.writeable = yy.flags.writeable = False  # shared by every tile of this size
    return xx, yy


def _noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    return np.asarray(Image.fromarray(grid).resize((size, size), Image.Resampling.BILINEAR))


def _lerp(c0: tuple, c1: tuple, t: np.ndarray) -> np.ndarray:
    c0 = np.asarray(c0, np.float32)
    return c0 + (np.asarray(c1, np.float32) - c0) * np.clip(t, 0, 1)[..., None]


_CROPS = np.array([(96, 140, 60), (146, 160, 70), (172, 150, 92), (120, 96, 64), (70, 118, 50),
                   (192, 176, 112)], np.float32)  # fmt: skip


def _jittered(rng, xs: tuple, ys: tuple, jitter: float, angles: tuple) -> list:
    """Slots on a regular grid, each nudged a little so rows do not look ruled."""
    return [(x + rng.uniform(-jitter, jitter), y + rng.uniform(-jitter, jitter),
             float(angles[rng.integers(len(angles))])) for x in xs for y in ys]  # fmt: skip


def _bg_farmland(rng, size):
    xx, yy = _coords(size)
    xcuts = np.sort(rng.uniform(0.15, 0.85, rng.integers(1, 4)))
    ycuts = np.sort(rng.uniform(0.15, 0.85, rng.integers(1, 3)))
    parcel = np.searchsorted(xcuts, xx) * 3 + np.searchsorted(ycuts, yy)
    colour, theta = _CROPS[rng.integers(0, len(_CROPS), 12)], rng.uniform(-0.2, 0.2, 12)
    theta += np.pi / 2 * rng.integers(0, 2, 12)  # furrows mostly follow a parcel edge
    freq, t = rng.uniform(9, 20, 12)[parcel], theta[parcel]
    stripes = np.sin(2 * np.pi * freq * (xx * np.cos(t) + yy * np.sin(t)))
    shade = 1 + 0.08 * stripes + 0.25 * (_noise(rng, size, 4) - 0.5)
    rgb = colour[parcel] * shade[..., None]
    edge = np.zeros_like(parcel, dtype=bool)
    edge[1:] |= parcel[1:] != parcel[:-1]
    edge[:, 1:] |= parcel[:, 1:] != parcel[:, :-1]
    rgb[edge] = (118, 100, 72)  # farm tracks between parcels
    return rgb, {"land": ~edge}


def _bg_forest(rng, size):
    xx, yy = _coords(size)
    crowns = _noise(rng, size, 14) ** 1.5 + 0.3 * _noise(rng, size, 3)
    rgb = _lerp((18, 48, 24), (70, 118, 52), crowns)
    cx, cy, r = *rng.uniform(0.25, 0.75, 2), rng.uniform(0.12, 0.22) * (rng.random() < 0.6)
    clearing = np.hypot(xx - cx, yy - cy) < r  # cabins only stand in a clearing
    rgb[clearing] = _lerp((112, 128, 72), (150, 150, 96), _noise(rng, size, 6))[clearing]
    return rgb, {"clearing": clearing}


def _bg_lake(rng, size):
    xx, yy = _coords(size)
    cx, cy = rng.uniform(0.3, 0.7, 2)
    radius = rng.uniform(0.25, 0.42)
    depth = radius - np.hypot(xx - cx, yy - cy) - 0.2 * (_noise(rng, size, 4) - 0.5)
    land = _lerp((58, 96, 48), (110, 136, 74), _noise(rng, size, 6))
    water = _lerp((44, 88, 98), (16, 40, 70), depth * 6)
    rgb = np.where((depth > 0)[..., None], water, land)
    rgb[(depth <= 0) & (depth > -0.03)] = (172, 160, 120)  # sandy shore
    return rgb, {"water": depth > 0.01, "land": depth < -0.04}


def _bg_river(rng, size):
    xx, yy = _coords(size)
    mid, amp, k = rng.uniform(0.35, 0.65), rng.uniform(0.03, 0.12), rng.uniform(0.5, 1.5)
    phase = rng.uniform(0, 2 * np.pi)
    width = rng.uniform(0.1, 0.18)
    centre = mid + amp * np.sin(2 * np.pi * k * xx + phase) + 0.04 * (_noise(rng, size, 3) - 0.5)
    dist = np.abs(yy - centre)
    rgb = _lerp((66, 104, 52), (128, 144, 80), _noise(rng, size, 5))
    rgb[dist < width / 2 + 0.025] = (150, 138, 104)  # muddy banks
    water = dist < width / 2
    rgb[water] = _lerp((60, 96, 96), (34, 66, 84), 1 - dist * 2 / width)[water]
    slots = []
    for x in (0.22, 0.5, 0.78):  # bridges cross square to the local flow direction
        slope = amp * 2 * np.pi * k * math.cos(2 * np.pi * k * x + phase)
        y = mid + amp * math.sin(2 * np.pi * k * x + phase)
        slots.append((x, y, math.degrees(math.atan(slope)) + 90))
    return rgb, {"water": water, "land": dist > width / 2 + 0.06, "crossing": slots}


def _bg_residential(rng, size):
    xx, yy = _coords(size)
    period, road_w = rng.uniform(0.32, 0.46), 0.07
    off = rng.uniform(0, period)
    dx = np.abs((xx - off + period / 2) % period - period / 2)
    dy = np.abs((yy - off + period / 2) % period - period / 2)
    rgb = _lerp((70, 110, 54), (122, 146, 84), _noise(rng, size, 12) ** 2)  # gardens and trees
    rgb[(dx < road_w / 2) | (dy < road_w / 2)] = (96, 96, 100)
    lines = off + period * np.arange(-3, 4)
    quarter = (period - road_w) / 4
    lots, street = [], []
    for a in lines + period / 2:  # block centres, two by two houses in each block
        for b in lines + period / 2:
            for sx, sy in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
                lots.append((a + sx * quarter, b + sy * quarter, 90.0 * rng.integers(2)))
    for line in lines:
        for b in lines + period / 4:
            street += [(line, b, 90.0), (line, b + period / 2, 90.0)]
            street += [(b, line, 0.0), (b + period / 2, line, 0.0)]
    inside = [s for s in lots if 0.08 < s[0] < 0.92 and 0.08 < s[1] < 0.92]
    on_road = [s for s in street if 0.05 < s[0] < 0.95 and 0.05 < s[1] < 0.95]
    return rgb, {"lot": inside, "street": on_road}


def _bg_industrial(rng, size):
    rgb = _lerp((128, 126, 120), (172, 170, 162), _noise(rng, size, 8) + 0.3 * _noise(rng, size, 3))
    blocks = _jittered(rng, (0.27, 0.73), (0.27, 0.73), 0.04, (0.0, 90.0))
    return rgb, {"block": blocks, "yard": np.ones((size, size), bool)}


def _bg_airport(rng, size):
    xx, yy = _coords(size)
    runway_y, half = rng.uniform(0.14, 0.3), 0.07
    rgb = _lerp((92, 124, 60), (136, 150, 88), _noise(rng, size, 6))
    on_runway = np.abs(yy - runway_y) < half
    rgb[on_runway] = (72, 72, 76)
    rgb[(np.abs(yy - runway_y) < 0.008) & (np.sin(2 * np.pi * 9 * xx) > 0.2)] = (230, 230, 226)
    rgb[np.abs(np.abs(yy - runway_y) - half + 0.01) < 0.006] = (210, 210, 206)
    taxi_x = rng.uniform(0.2, 0.8)
    rgb[(np.abs(xx - taxi_x) < 0.03) & (yy > runway_y) & (yy < runway_y + 0.2)] = (112, 112, 112)
    apron = yy > runway_y + 0.2
    rgb[apron] = _lerp((150, 150, 146), (176, 174, 168), _noise(rng, size, 5))[apron]
    return rgb, {"apron": apron}


def _bg_harbor(rng, size):
    xx, yy = _coords(size)
    quay = rng.uniform(0.3, 0.45)
    rgb = _lerp((124, 122, 118), (160, 158, 150), _noise(rng, size, 6))
    # Container stacks: a grid of random colours on part of the quay, texture only.
    stacks = np.array([PALETTE[c] for c in ("red", "blue", "orange", "white", "green")], np.float32)
    cells = (yy * 16).astype(int) * 8 + (xx * 8).astype(int)
    pick = rng.integers(-4, 5, 128)
    yard = (yy < quay - 0.06) & (yy > 0.05) & (pick[cells] >= 0) & ((yy * 32).astype(int) % 2 == 0)
    rgb[yard] = stacks[pick[cells] % 5][yard] * 0.8
    water = yy > quay
    rgb[water] = _lerp((36, 70, 92), (20, 44, 72), (yy - quay) * 3)[water]
    piers, berths, near_pier = rng.permutation([0.2, 0.5, 0.8])[: rng.integers(1, 4)], [], 0
    for px in piers:
        on_pier = (np.abs(xx - px) < 0.025) & water & (yy < quay + 0.55)
        rgb[on_pier] = (150, 148, 140)
        near_pier = near_pier | (np.abs(xx - px) < 0.05)
        berths += [(px + side * 0.08, quay + d, 90.0) for side in (-1, 1) for d in (0.13, 0.38)]
    return rgb, {"berth": berths, "water": water & ~np.asarray(near_pier, bool)}


def _bg_parking_lot(rng, size):
    xx, yy = _coords(size)
    rgb = _lerp((56, 58, 62), (92, 92, 96), _noise(rng, size, 10) ** 2)  # oil stains, patching
    x0, y0 = rng.uniform(0, 0.1), rng.uniform(-0.04, 0.04)
    rows = [y0 + r for r in (0.2, 0.34, 0.66, 0.8)]
    stalls = []
    for ry in rows:  # double rows of stalls, back to back, with a driving aisle between pairs
        band = np.abs(yy - ry) < 0.07
        rgb[band & (np.abs((xx - x0) % 0.1) < 0.012)] = (220, 220, 214)
        stalls += [(x0 + 0.05 + 0.1 * i, ry, 90.0) for i in range(10) if x0 + 0.1 * i < 0.86]
    return rgb, {"stall": stalls}


def _bg_desert(rng, size):
    xx, yy = _coords(size)
    theta, freq = rng.uniform(0, np.pi), rng.uniform(3, 7)
    along = xx * np.cos(theta) + yy * np.sin(theta)
    phase = (freq * along + 0.8 * _noise(rng, size, 3)) % 1.0
    shade = np.where(phase < 0.7, phase / 0.7, (1 - phase) / 0.3)  # long windward, short lee slope
    rgb = _lerp((176, 136, 90), (232, 204, 152), 0.75 * shade + 0.25 * _noise(rng, size, 16))
    return rgb, {"land": np.ones((size, size), bool)}


def _bg_beach(rng, size):
    xx, yy = _coords(size)
    line = rng.uniform(0.45, 0.6) + 0.06 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * xx)
    line = line + 0.04 * (_noise(rng, size, 4) - 0.5)
    rgb = _lerp((206, 186, 140), (236, 220, 176), _noise(rng, size, 12))
    rgb[yy < 0.08 + 0.04 * _noise(rng, size, 6)] = (70, 112, 58)  # dune vegetation
    sea = yy > line
    rgb[sea] = _lerp((72, 168, 170), (24, 78, 128), (yy - line) * 4)[sea]
    rgb[(yy > line - 0.04) & ~sea] = (170, 150, 112)  # wet sand
    rgb[(yy > line) & (yy < line + 0.015)] = (232, 238, 236)  # surf
    return rgb, {"sand": (yy < line - 0.08) & (yy > 0.16), "water": yy > line + 0.08}


def _bg_storage_tanks(rng, size):
    xx, yy = _coords(size)
    rgb = _lerp((146, 144, 136), (176, 174, 164), _noise(rng, size, 8))
    for y in (1 / 3, 2 / 3):  # pipe racks between the rows of tanks
        rgb[np.abs(yy - y) < 0.012] = (96, 92, 86)
    thirds = (1 / 6, 1 / 2, 5 / 6)
    return rgb, {"tank": _jittered(rng, thirds, thirds, 0.02, (0.0,))}


BACKGROUNDS = {
    "farmland": _bg_farmland,
    "forest": _bg_forest,
    "lake": _bg_lake,
    "river": _bg_river,
    "residential": _bg_residential,
    "industrial": _bg_industrial,
    "airport": _bg_airport,
    "harbor": _bg_harbor,
    "parking_lot": _bg_parking_lot,
    "desert": _bg_desert,
    "beach": _bg_beach,
    "storage_tanks": _bg_storage_tanks,
}
