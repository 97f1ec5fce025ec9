"""The checkable facts of a SynthRS tile, and the phrases captions use for its scene class.

Templates render facts into text, degraders alter facts before rendering (so each degraded
caption changes exactly one known thing), and the oracle reads facts back out of any caption.
The world's own words (kinds, colours, positions, numbers) live in `core.vocabulary`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rs_pipeline.core.sources.synthrs import TileAnnotation
from rs_pipeline.core.vocabulary import as_words

# How captions name each SynthRS scene class (keys in SCENE_CLASSES order, which draws of
# another class index); the first is the canonical phrase.
CLASS_PHRASES: dict[str, tuple[str, ...]] = {
    "farmland": ("farmland", "cropland", "agricultural fields"),
    "forest": ("forest", "woodland"),
    "lake": ("lake",),
    "river": ("river",),
    "residential": ("residential area", "residential"),
    "industrial": ("industrial area", "industrial"),
    "airport": ("airport",),
    "harbor": ("harbor", "harbour", "port"),
    "parking_lot": ("parking lot",),
    "desert": ("desert",),
    "beach": ("beach",),
    # Not "storage tanks": that names objects, which industrial scenes have too.
    "storage_tanks": ("tank farm", "storage tank farm", "oil depot"),
}


def scene_phrase(scene_class: str) -> str:
    """The canonical phrase of a class (readable for classes we do not know)."""
    return CLASS_PHRASES.get(scene_class, (as_words(scene_class),))[0]


@dataclass(frozen=True)
class Facts:
    """What a caption may state: class, counts and colours per kind, object positions."""

    scene: str
    counts: tuple[tuple[str, int], ...]  # (kind, n), sorted by kind
    colours: tuple[tuple[str, tuple[str, ...]], ...]  # (kind, colours), sorted
    placed: tuple[tuple[str, str, str], ...]  # (colour, kind, position) of uniquely named objects
    gsd_m: float | None = None
    sensor: str | None = None

    def with_count(self, kind: str, n: int) -> Facts:
        """The same facts with one kind's count changed (or added)."""
        counts = dict(self.counts) | {kind: n}
        return replace(self, counts=tuple(sorted(counts.items())))

    def with_colours(self, kind: str, colours: tuple[str, ...]) -> Facts:
        """The same facts with one kind's colours changed (or added)."""
        table = dict(self.colours) | {kind: colours}
        return replace(self, colours=tuple(sorted(table.items())))


def facts_of(ann: TileAnnotation) -> Facts:
    """The facts of a tile's ground truth."""
    colours: dict[str, set[str]] = {}
    for o in ann.objects:
        colours.setdefault(o.kind, set()).add(o.color)
    named = [(o.color, o.kind) for o in ann.objects]
    placed = tuple(
        sorted((o.color, o.kind, o.position) for o in ann.objects
               if named.count((o.color, o.kind)) == 1)
    )  # fmt: skip
    return Facts(
        scene=ann.scene_class,
        counts=tuple(sorted(ann.counts().items())),
        colours=tuple(sorted((k, tuple(sorted(v))) for k, v in colours.items())),
        placed=placed,
        gsd_m=ann.geo.gsd_m,
        sensor=ann.geo.sensor,
    )
