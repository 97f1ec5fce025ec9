"""`compute_score`: the paper's reward for one reply, as verl / EasyR1 reward managers call it.

ScoreRS's customVeRL (an EasyR1 fork) loads a reward file and calls
`compute_score(response_str, ground_truth, reward_type=..., problem=..., images=...)`, with the
config's `reward_function_kwargs` (the server URL, the format weight) bound in front; this
function keeps that calling convention, so it drops in for the official one. (Plain verl's
`compute_score(data_source, solution_str, ground_truth, extra_info)` is another convention: wrap
this in a two-line function there.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from PIL import Image

from rs_pipeline.core.rewards.client import (
    RewardClient,
    ScorerUnreachable,
    encode_image,
)
from rs_pipeline.core.rewards.shaping import (
    answer_text,
    check_reward_type,
    format_reward,
    shape_open_ended,
    shape_rule,
)

log = logging.getLogger(__name__)

ON_UNREACHABLE = ("raise", "zero")
IMAGE_PLACEHOLDER = "<image>"  # the server's chat template places the image itself


def first_image(images: Any) -> Any:
    """The first image of `images` (a list, a tuple, a numpy object array) or `images` itself."""
    if images is None:
        raise ValueError(
            "open_ended reward needs the question's image: pass images=[image] (the dataset's "
            "`image` column)"
        )
    single = (Image.Image, str, bytes, bytearray, memoryview, os.PathLike, Mapping)
    if isinstance(images, single):
        return images
    listed = list(images)
    if not listed:
        raise ValueError("open_ended reward got images=[]; pass the question's image")
    return listed[0]


def _client_for(client: RewardClient | None, reward_server_url: str | None) -> RewardClient:
    if client is not None:
        return client
    if reward_server_url:
        return RewardClient(url=reward_server_url)
    raise ValueError(
        "reward_type 'open_ended' asks the scorer service: pass reward_server_url= (e.g. "
        "http://127.0.0.1:8008, from `rs-pipeline serve --scorer VERSION`) or client="
    )


def _open_ended_scores(
    *,
    client: RewardClient,
    predict_str: str,
    ground_truth: str,
    problem: str,
    image: Any,
    model: str,
    on_unreachable: str,
) -> tuple[float, float] | None:
    """(answer, reference) scores from the service; None when it is down and that is allowed."""
    try:
        return client.rewards(
            problem=problem.replace(IMAGE_PLACEHOLDER, "").strip(),
            image_b64=encode_image(image),
            completion1=answer_text(predict_str),
            completion2=str(ground_truth),
            model=model,
        )
    except ScorerUnreachable as exc:
        if on_unreachable == "raise":
            raise
        log.warning("open_ended reward: accuracy 0 for this reply, %s", exc)
        return None


def compute_score(
    predict_str: str,
    ground_truth: str,
    problem: str = "",
    images: Any = None,
    reward_type: str = "open_ended",
    reward_server_url: str | None = None,
    format_weight: float = 0.3,
    *,
    client: RewardClient | None = None,
    on_unreachable: str = "raise",
    reward_model_name: str = "rs-pipeline",
) -> dict[str, float]:
    """`{"overall", "format", "accuracy"}` for one reply, on every branch.

    `open_ended` sends the reply's `<answer>` text and the ground truth, with `problem` and the
    first of `images`, to the service (`client`, else one for `reward_server_url`); a service
    that stays down raises ScorerUnreachable, or with `on_unreachable="zero"` scores accuracy 0
    and logs a warning. `em` and `iou` are rules (shaping.py). A reply that fails the format
    gets overall 0 without a request. `reward_model_name` is the official client's keyword, so
    its EasyR1 configs run unchanged; the service echoes it back and scores with its own model.
    """
    check_reward_type(reward_type)
    if on_unreachable not in ON_UNREACHABLE:
        raise ValueError(
            f"on_unreachable must be one of {list(ON_UNREACHABLE)}, got {on_unreachable!r}"
        )
    if reward_type != "open_ended":
        return shape_rule(
            predict=predict_str,
            ground_truth=ground_truth,
            reward_type=reward_type,
            format_weight=format_weight,
        )
    # Checked before the format gate, so a misconfigured run fails on its first reply.
    service = _client_for(client, reward_server_url)
    image = first_image(images)
    format_score = format_reward(predict_str)
    scores = None
    if format_score:
        scores = _open_ended_scores(
            client=service,
            predict_str=predict_str,
            ground_truth=ground_truth,
            problem=problem,
            image=image,
            model=reward_model_name,
            on_unreachable=on_unreachable,
        )
    return shape_open_ended(format_score=format_score, scores=scores, format_weight=format_weight)
