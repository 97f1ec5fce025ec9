"""The HTTP formats of the scorer service, and the image decoding every request goes through.

`/v1/rewards` is the reward-server format of the paper's RL loop (two completions of one
problem about one image); `/v1/score` scores any number of texts against one image. Images come
base64-encoded, optionally as a `data:image/...;base64,` URL. The client side
(`rs_pipeline.core.rewards`) is written against these exact field names.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Literal

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel

# Formats a remote-sensing tile plausibly comes in. Naming them keeps PIL from trying every
# plugin it has on untrusted bytes (EPS, for one, would hand the file to Ghostscript).
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
_DATA_URL = re.compile(r"data:image/[A-Za-z0-9.+-]+;base64,", re.IGNORECASE)
_NO_WHITESPACE = str.maketrans("", "", " \t\r\n")  # line-wrapped base64 is still base64


class RewardRequest(BaseModel):
    """POST /v1/rewards: both completions are scored against the image, the problem as question."""

    model: str
    problem_description: str
    image_data: str
    completion1: str
    completion2: str


class CompletionScore(BaseModel):
    completion_id: Literal["completion1", "completion2"]
    score: float


class RewardResponse(BaseModel):
    """`model` echoes the request's; scores come in completion order."""

    model: str
    scores: list[CompletionScore]


class ScoreRequest(BaseModel):
    """POST /v1/score: each text against the image, with the same question (or none)."""

    image_data: str
    texts: list[str]
    question: str | None = None


class ScoreResponse(BaseModel):
    """`model` is the served scorer_version; one score per request text, in order."""

    model: str
    scores: list[float]


class Health(BaseModel):
    status: Literal["ok"]
    scorer_version: str


class BadImage(ValueError):
    """Not base64, or not an image in one of IMAGE_FORMATS: the client's fault (400)."""


class ImageTooLarge(ValueError):
    """More pixels than serving.max_image_pixels (413)."""


def _image_bytes(image_data: str) -> bytes:
    match = _DATA_URL.match(image_data)
    payload = image_data[match.end() :] if match else image_data
    payload = payload.translate(_NO_WHITESPACE)
    if not payload:
        raise BadImage("image_data is empty; send the image file's bytes base64-encoded")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as err:
        raise BadImage(
            f"image_data is not valid base64 ({err}); send the image file's bytes "
            "base64-encoded, optionally prefixed with data:image/png;base64,"
        ) from None


def decode_image(image_data: str, *, max_pixels: int) -> Image.Image:
    """An RGB image from base64 (or a data URL); its size is checked before any pixel decodes.

    BadImage for anything undecodable, ImageTooLarge over `max_pixels` (or over PIL's own
    decompression-bomb limit). Blocking: call it in a thread for large images.
    """
    raw = _image_bytes(image_data)
    try:
        # `open` reads the header only, so the size check below costs no pixel memory.
        image = Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as err:
        raise ImageTooLarge(f"{err}; send at most {max_pixels} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise BadImage(
            f"image_data decodes to no readable image ({err}); send one of "
            f"{', '.join(IMAGE_FORMATS)}"
        ) from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height} pixels; this server takes at most "
            f"{max_pixels} (serving.max_image_pixels): downscale it first"
        )
    try:
        return image.convert("RGB")
    except (OSError, ValueError, SyntaxError) as err:  # truncated or corrupt pixel data
        raise BadImage(f"image_data holds a corrupt image ({err})") from None
