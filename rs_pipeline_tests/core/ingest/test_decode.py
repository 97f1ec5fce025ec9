import numpy as np
import pytest
from PIL import Image

from rs_pipeline.core.config import IngestConfig
from rs_pipeline.core.ingest.decode import Decoded, Rejected, decode_image
from rs_pipeline_tests.factories import encode, noise_rgb


def damaged_png() -> bytes:
    """A complete PNG whose compressed pixel data is overwritten in the middle."""
    data = bytearray(encode(noise_rgb(), "PNG"))
    data[100:140] = b"\x00" * 40
    return bytes(data)


CFG = IngestConfig(max_side=64, max_pixels=1_000_000)


def reason_of(data: bytes, cfg: IngestConfig = CFG) -> str:
    result = decode_image(data, cfg)
    assert isinstance(result, Rejected), f"expected a rejection, got {result}"
    return str(result.reason)


def test_rgb_jpeg_decodes_unchanged():
    result = decode_image(encode(noise_rgb(48), "JPEG"), CFG)
    assert isinstance(result, Decoded)
    assert result.image.mode == "RGB" and result.image.size == (48, 48)
    assert result.normalisation == ""


def test_large_image_is_bounded_to_max_side_keeping_aspect():
    result = decode_image(encode(Image.new("RGB", (300, 150), "green"), "PNG"), CFG)
    assert isinstance(result, Decoded)
    assert result.image.size == (64, 32)
    assert result.orig_size == (300, 150)
    assert "resized 300x150->64x32" in result.normalisation


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: b"", "zero_byte"),
        (lambda: b"plain text, certainly not pixels", "not_an_image"),
        (lambda: encode(noise_rgb(), "JPEG")[:300], "truncated"),
        (lambda: encode(noise_rgb(), "PNG")[:200], "truncated"),
        (lambda: damaged_png(), "corrupt"),
        (lambda: encode(Image.new("L", (2000, 2000)), "PNG"), "decompression_bomb"),
        (lambda: encode(Image.fromarray(np.zeros((8, 8), np.float32)), "TIFF"), "unsupported_mode"),
    ],
    ids=["zero-byte", "text", "truncated-jpeg", "truncated-png", "corrupt-png", "bomb", "float"],
)
def test_bad_input_is_rejected_with_its_reason(make, reason):
    assert reason_of(make()) == reason


@pytest.mark.parametrize("mode", ["CMYK", "P", "L", "RGBA"])
def test_odd_modes_are_normalised_to_rgb_and_recorded(mode):
    fmt = "JPEG" if mode in ("CMYK", "L") else "PNG"
    result = decode_image(encode(noise_rgb().convert(mode), fmt), CFG)
    assert isinstance(result, Decoded)
    assert result.image.mode == "RGB" and result.orig_mode == mode
    assert f"mode {mode}->RGB" in result.normalisation


def test_sixteen_bit_band_is_percentile_stretched_to_rgb():
    arr = np.linspace(0, 60000, 32 * 32).reshape(32, 32).astype(np.uint16)
    result = decode_image(encode(Image.fromarray(arr), "PNG"), CFG)
    assert isinstance(result, Decoded)
    pixels = np.asarray(result.image)
    assert pixels.min() == 0 and pixels.max() == 255  # the stretch uses the full range


def test_odd_mode_policy_quarantine_rejects_cmyk():
    cfg = IngestConfig(max_side=64, odd_mode_policy="quarantine")
    assert reason_of(encode(noise_rgb().convert("CMYK"), "JPEG"), cfg) == "odd_mode"


def test_rejection_details_are_deterministic():
    data = b"not an image at all"
    assert decode_image(data, CFG) == decode_image(data, CFG)


def _skip_scan_reference(data: bytes, pos: int) -> int:
    """The byte-by-byte walk the regex search replaces."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return len(data)
        nxt = data[pos + 1]
        if nxt == 0xFF:
            pos += 1
        elif nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
            pos += 2
        else:
            return pos


def test_scan_skipping_finds_the_same_marker_as_a_byte_by_byte_walk():
    import random

    from rs_pipeline.core.ingest.decode import _skip_scan

    rng = random.Random(0)
    alphabet = [0xFF, 0x00, 0xD0, 0xD7, 0xD8, 0xD9, 0xC4, 0x12]  # fill, stuffing, RSTn, markers
    for _ in range(3000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        pos = rng.randint(0, len(data))
        assert _skip_scan(data, pos) == _skip_scan_reference(data, pos), (data, pos)
