"""Decode one encoded image into bounded RGB, or say exactly why it cannot be admitted.

Besides mode and size, decoding records what else it did, in `normalisation` (what was done
to the pixels) and in `notes` (`SampleNote`s a reader of the manifest should know):

- EXIF orientation (2-8) is applied, as a viewer would show the photo: width and height swap
  for 5-8. An EXIF block that cannot be parsed is noted `exif_unreadable`, not guessed at.
- An animated image (GIF, WebP, APNG, MPO with n_frames > 1) keeps its first frame, noted
  `animated_first_frame` with the frame count; a friendlier outcome than quarantine, as the
  first frame is a real image. Multi-page TIFF stays rejected (pages are often bands).
- `strip_jpeg_trailer` cuts bytes after a JPEG's end-of-image marker; batch ingest calls it
  before hashing, so the sample_id is the sha256 of the stripped bytes: two files that differ
  only in trailing junk are one image, and the stored original holds no junk.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from rs_pipeline.core.config import IngestConfig
from rs_pipeline.core.records import QuarantineReason, SampleNote

# Leading bytes of formats we recognise: an unreadable file that starts like one of these is
# a damaged image ("corrupt"), anything else is "not_an_image".
_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"RIFF",
    b"\x00\x00\x00\x0cjP  ",
    b"\xff\x4f\xff\x51",
)

# Modes Pillow turns into RGB without losing meaning.
_CONVERTIBLE = {"L", "LA", "P", "PA", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "1"}
# Single-band high-bit-depth modes: stretched to 8 bits by percentiles, then grey RGB.
_HIGH_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


@dataclass(frozen=True)
class Decoded:
    """A decoded image (RGB, longer side <= max_side) and what was done to it."""

    image: Image.Image
    orig_format: str
    orig_mode: str
    orig_size: tuple[int, int]
    normalisation: str
    notes: tuple[str, ...] = ()  # SampleNote entries, "<note>: <detail>"


@dataclass(frozen=True)
class Rejected:
    """Why an input cannot be admitted."""

    reason: QuarantineReason
    detail: str


def _ends_early(data: bytes) -> bool:
    """A JPEG without its EOI marker or a PNG without its IEND chunk was cut short."""
    if data.startswith(b"\xff\xd8\xff"):
        return not data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if data.startswith(b"\x89PNG"):
        return b"IEND" not in data[-16:]
    return False


# Inside a scan, 0xFF is followed by a stuffed 0x00, a restart marker (D0-D7) or more 0xFF
# fill; any other byte after 0xFF starts a marker. One regex search finds it in C.
_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _skip_scan(data: bytes, pos: int) -> int:
    """Offset of the first marker after entropy-coded data at `pos` (or len(data))."""
    found = _MARKER_IN_SCAN.search(data, pos)
    return len(data) if found is None else found.start()


def _jpeg_end(data: bytes) -> int | None:
    """Offset just past the EOI that ends the JPEG, or None when it cannot be told.

    Segments are walked by their lengths, so an EXIF thumbnail's own EOI (inside APP1) is
    not mistaken for the end; an MPO (APP2 "MPF") is left whole, its later pictures follow
    the first EOI on purpose.
    """
    pos, n = 2, len(data)
    while pos + 1 < n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xD9:
            return pos + 2
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        if pos + 4 > n:
            return None
        if marker == 0xE2 and data[pos + 4 : pos + 8] == b"MPF\x00":
            return None
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next marker
            pos = _skip_scan(data, pos)
    return None


def strip_jpeg_trailer(data: bytes) -> tuple[bytes, int]:
    """(bytes up to and including a JPEG's EOI, how many trailing bytes were cut).

    Anything that is not a complete, parseable JPEG is returned whole (0 cut), so truncation
    and corruption are still diagnosed by decoding.
    """
    if not data.startswith(b"\xff\xd8\xff"):
        return data, 0
    end = _jpeg_end(data)
    if end is None or end >= len(data):
        return data, 0
    return data[:end], len(data) - end


def _stretch_to_rgb(image: Image.Image) -> Image.Image:
    """Percentile-stretch a 16/32-bit single band to 8-bit grey RGB."""
    arr = np.asarray(image, dtype=np.float64)  # (H, W)
    lo, hi = np.percentile(arr, [2.0, 98.0])
    scaled = np.clip((arr - lo) / max(hi - lo, 1e-9), 0.0, 1.0) * 255.0
    return Image.fromarray(scaled.astype(np.uint8), mode="L").convert("RGB")


def _normalise_mode(image: Image.Image, cfg: IngestConfig) -> Image.Image | Rejected:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode not in _CONVERTIBLE and mode not in _HIGH_BIT:
        return Rejected(QuarantineReason.UNSUPPORTED_MODE, f"mode {mode!r} has no RGB reading")
    if cfg.odd_mode_policy == "quarantine":
        return Rejected(QuarantineReason.ODD_MODE, f"mode {mode!r} (odd_mode_policy=quarantine)")
    if mode in _HIGH_BIT:
        return _stretch_to_rgb(image)
    if mode in {"P", "PA"}:
        image = image.convert("RGBA")
    return image.convert("RGB")


def _open(data: bytes, cfg: IngestConfig) -> Image.Image | Rejected:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError) as err:
        if isinstance(err, Image.DecompressionBombError):
            return Rejected(QuarantineReason.DECOMPRESSION_BOMB, str(err))
        # Pillow's message embeds a memory address: keep details deterministic.
        if _ends_early(data):
            return Rejected(QuarantineReason.TRUNCATED, "file ends before its end marker")
        if data.startswith(_MAGIC):
            return Rejected(QuarantineReason.CORRUPT, "known image header, but unreadable")
        return Rejected(QuarantineReason.NOT_AN_IMAGE, "no image format recognised")
    except Image.DecompressionBombWarning as err:
        return Rejected(QuarantineReason.DECOMPRESSION_BOMB, str(err))
    except (OSError, ValueError, SyntaxError) as err:
        return _decode_failure(err, data)
    width, height = image.size
    # Checked from the header, before any pixel is decoded.
    if width * height > cfg.max_pixels:
        return Rejected(
            QuarantineReason.DECOMPRESSION_BOMB,
            f"{width}x{height} exceeds ingest.max_pixels={cfg.max_pixels}",
        )
    if getattr(image, "n_frames", 1) > 1 and image.format == "TIFF":
        return Rejected(
            QuarantineReason.UNSUPPORTED_MODE, f"multi-band/multi-page TIFF ({image.n_frames})"
        )
    return image


def _load(image: Image.Image, data: bytes) -> Rejected | None:
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        return _decode_failure(err, data)
    return None


def _decode_failure(err: Exception, data: bytes) -> Rejected:
    """A decoder error on a recognised format: cut short, or damaged inside."""
    detail = f"{type(err).__name__}: {err}"
    if "truncated" in str(err).lower() or _ends_early(data):
        return Rejected(QuarantineReason.TRUNCATED, detail)
    return Rejected(QuarantineReason.CORRUPT, detail)


def _orientation(image: Image.Image) -> int | None:
    """EXIF orientation (1 when absent), or None when the EXIF block cannot be parsed."""
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # Pillow raises assorted types (struct.error, SyntaxError, ...) here
        return None


def _upright(image: Image.Image, steps: list[str], notes: list[str]) -> Image.Image:
    """The image as its EXIF orientation says it is shown; what was done goes to steps/notes."""
    orientation = _orientation(image)
    if orientation is None:
        notes.append(f"{SampleNote.EXIF_UNREADABLE}: orientation not applied")
        return image
    if not 2 <= orientation <= 8:
        return image
    steps.append(f"exif orientation {orientation} applied")
    return ImageOps.exif_transpose(image)


def decode_image(data: bytes, cfg: IngestConfig) -> Decoded | Rejected:
    """Decode, normalise to RGB and bound the size; never raises for bad input."""
    if not data:
        return Rejected(QuarantineReason.ZERO_BYTE, "file is empty")
    opened = _open(data, cfg)
    if isinstance(opened, Rejected):
        return opened
    # Counted before load: seeking frames after load would discard the loaded first frame.
    frames = getattr(opened, "n_frames", 1)
    failed = _load(opened, data)
    if failed is not None:
        return failed
    orig_mode, orig_size, orig_format = opened.mode, opened.size, opened.format or "unknown"
    steps: list[str] = [] if orig_mode == "RGB" else [f"mode {orig_mode}->RGB"]
    notes: list[str] = []
    if frames > 1:
        steps.append(f"frame 1 of {frames}")
        notes.append(f"{SampleNote.ANIMATED_FIRST_FRAME}: {frames} frames, only the first kept")
    rgb = _normalise_mode(_upright(opened, steps, notes), cfg)
    if isinstance(rgb, Rejected):
        return rgb
    if max(rgb.size) > cfg.max_side:
        rgb = rgb.copy()
        rgb.thumbnail((cfg.max_side, cfg.max_side), Image.Resampling.LANCZOS)
        steps.append(f"resized {orig_size[0]}x{orig_size[1]}->{rgb.size[0]}x{rgb.size[1]}")
    return Decoded(rgb, orig_format, orig_mode, orig_size, "; ".join(steps), tuple(notes))
