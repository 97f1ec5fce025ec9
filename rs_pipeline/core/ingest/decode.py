"""Decode one encoded image into bounded RGB, or say exactly why it cannot be admitted."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from rs_pipeline.core.config import IngestConfig
from rs_pipeline.core.records import QuarantineReason

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


def decode_image(data: bytes, cfg: IngestConfig) -> Decoded | Rejected:
    """Decode, normalise to RGB and bound the size; never raises for bad input."""
    if not data:
        return Rejected(QuarantineReason.ZERO_BYTE, "file is empty")
    opened = _open(data, cfg)
    if isinstance(opened, Rejected):
        return opened
    failed = _load(opened, data)
    if failed is not None:
        return failed
    orig_mode, orig_size, orig_format = opened.mode, opened.size, opened.format or "unknown"
    rgb = _normalise_mode(opened, cfg)
    if isinstance(rgb, Rejected):
        return rgb
    steps = [] if orig_mode == "RGB" else [f"mode {orig_mode}->RGB"]
    if max(rgb.size) > cfg.max_side:
        rgb = rgb.copy()
        rgb.thumbnail((cfg.max_side, cfg.max_side), Image.Resampling.LANCZOS)
        steps.append(f"resized {orig_size[0]}x{orig_size[1]}->{rgb.size[0]}x{rgb.size[1]}")
    return Decoded(rgb, orig_format, orig_mode, orig_size, "; ".join(steps))
