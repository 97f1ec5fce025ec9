"""The scorer service's HTTP client: `/v1/rewards` (the paper's RL reward) and `/v1/score`.

`rs-pipeline serve` puts one scorer version behind HTTP; RL trainers (verl, EasyR1, TRL) and
assets that would rather not hold the model in-process call it through `RewardClient`.
Timeouts and retries live here and only here: every request has a timeout, connection errors,
timeouts and 5xx are retried a bounded number of times with backoff, and a 4xx (our request
is wrong, trying again cannot help) is raised at once with the server's message.

The client is a frozen value holding no connection: it pickles into Ray and DataLoader
workers as it is, and a loopback connect costs nothing beside a VLM forward pass.
"""

from __future__ import annotations

import base64
import functools
import io
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from PIL import Image

if TYPE_CHECKING:
    from rs_pipeline.core.config import ServingConfig

REWARDS_PATH, SCORE_PATH, HEALTH_PATH = "/v1/rewards", "/v1/score", "/healthz"
_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA"})  # others are sent as RGB

ImageLike = Image.Image | bytes | str | os.PathLike | Mapping[str, Any]


class ScorerUnreachable(RuntimeError):
    """The scorer service did not answer: refused, timed out or 5xx, after every retry."""

    def __init__(self, *, url: str, detail: str, attempts: int) -> None:
        super().__init__(
            f"scorer service at {url} unreachable after {attempts} attempt(s): {detail}; "
            "start one with `rs-pipeline serve --scorer VERSION` or point serving.url "
            "(reward_server_url) at a running one"
        )
        self.url, self.detail, self.attempts = url, detail, attempts

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        # Rebuilt from its fields, not from `args`: Ray and multiprocessing pickle exceptions
        # raised in workers, and the keyword-only constructor would refuse the message alone.
        fields = {"url": self.url, "detail": self.detail, "attempts": self.attempts}
        return functools.partial(ScorerUnreachable, **fields), ()


def encode_image(image: ImageLike) -> str:
    """Base64 of an image: a PIL image as PNG, bytes as they are, a path's file.

    A `data:image/...;base64,` string passes through (the server accepts the prefix), and so
    does a Hugging Face datasets image dict (`{"bytes": ..., "path": ...}`), the form parquet
    RL datasets hold their images in.
    """
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        (image if image.mode in _PNG_MODES else image.convert("RGB")).save(buffer, format="PNG")
        data = buffer.getvalue()
    elif isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
    elif isinstance(image, str) and image.startswith("data:image/"):
        return image
    elif isinstance(image, str | os.PathLike):
        data = Path(image).read_bytes()
    elif isinstance(image, Mapping) and (image.get("bytes") or image.get("path")):
        return encode_image(image.get("bytes") or image["path"])
    else:
        raise TypeError(
            f"cannot encode a {type(image).__name__} as an image; pass a PIL image, encoded "
            "bytes, a file path or a {'bytes': ...} dict"
        )
    return base64.b64encode(data).decode("ascii")


def _base_url(url: str) -> str:
    """The service root: trailing `/` and an endpoint path dropped (the official client's
    `reward_server_url` is the full `.../v1/rewards` address)."""
    root = url.strip().rstrip("/")
    for path in (REWARDS_PATH, SCORE_PATH):
        root = root.removesuffix(path)
    if not root.startswith(("http://", "https://")):
        raise ValueError(
            f"scorer url {url!r} is not an http(s) address; set serving.url (or "
            "reward_server_url) to e.g. http://127.0.0.1:8008"
        )
    return root


def _server_message(response: httpx.Response) -> str:
    """The `detail` of a FastAPI error body, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, Mapping) and "detail" in body:
        return str(body["detail"])[:300]
    return str(body)[:300]


def _float_scores(values: Any, *, expected: int, url: str) -> list[float]:
    if not isinstance(values, list) or len(values) != expected:
        raise ValueError(f"{url} answered {values!r:.200}; expected {expected} scores")
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{url} answered non-numeric scores {values!r:.200}") from exc


@dataclass(frozen=True)
class RewardClient:
    """Calls one scorer service; `url` is its root (an endpoint path on it is dropped).

    `max_retries` counts retries after the first attempt; attempt k waits
    `backoff_s * 2**(k-1)` before the next. The bearer token is read from `token_env` at each
    call, never kept, so it is in no repr, pickle or error message.
    """

    url: str
    timeout_s: float = 30.0
    max_retries: int = 2
    backoff_s: float = 0.5
    token_env: str | None = "RS_PIPELINE_SERVE_TOKEN"

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", _base_url(self.url))
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}; set serving.timeout_s")
        if self.max_retries < 0 or self.backoff_s < 0:
            raise ValueError(
                f"max_retries ({self.max_retries}) and backoff_s ({self.backoff_s}) must be >= 0"
            )

    @classmethod
    def from_config(cls, settings: ServingConfig, url: str | None = None) -> RewardClient:
        """A client for `url`, else `settings.url`, with the section's timeout, retries, token."""
        target = url or settings.url
        if not target:
            raise ValueError(
                "no scorer service to call: set serving.url to a running `rs-pipeline serve` "
                "(e.g. http://127.0.0.1:8008), or pass url="
            )
        return cls(
            url=target,
            timeout_s=settings.timeout_s,
            max_retries=settings.max_retries,
            token_env=settings.token_env,
        )

    def rewards(
        self,
        *,
        problem: str,
        image_b64: str,
        completion1: str,
        completion2: str,
        model: str = "rs-pipeline",
    ) -> tuple[float, float]:
        """The scores of two completions to `problem` on one image (answer, reference)."""
        payload = {
            "model": model,
            "problem_description": problem,
            "image_data": image_b64,
            "completion1": completion1,
            "completion2": completion2,
        }
        url = self.url + REWARDS_PATH
        body = self._post(url=url, payload=payload)
        items = body.get("scores")
        if not isinstance(items, list) or len(items) != 2:
            raise ValueError(f"{url} answered {body!r:.200}; expected two scores")
        # By id when the server names them (order is then irrelevant), else by position.
        by_id = {i.get("completion_id"): i.get("score") for i in items if isinstance(i, Mapping)}
        if {"completion1", "completion2"} <= by_id.keys():
            values = [by_id["completion1"], by_id["completion2"]]
        else:
            values = [i.get("score") if isinstance(i, Mapping) else i for i in items]
        first, second = _float_scores(values, expected=2, url=url)
        return first, second

    def score(
        self, *, image_b64: str, texts: Sequence[str], question: str | None = None
    ) -> list[float]:
        """One score per text, every text on the same image (and question)."""
        if not texts:
            return []  # nothing to ask: no round trip
        url = self.url + SCORE_PATH
        payload = {"image_data": image_b64, "texts": list(texts), "question": question}
        body = self._post(url=url, payload=payload)
        return _float_scores(body.get("scores"), expected=len(texts), url=url)

    def _headers(self) -> dict[str, str]:
        token = os.environ.get(self.token_env) if self.token_env else None
        return {"Authorization": f"Bearer {token}"} if token else {}

    def health(self) -> dict[str, Any]:
        """The service's `/healthz` body (`status`, `scorer_version`)."""
        return self._post(url=self.url + HEALTH_PATH, payload=None)

    def _post(self, *, url: str, payload: Mapping[str, Any] | None) -> dict[str, Any]:
        """The JSON body of a 2xx answer (a GET without `payload`), retrying what can recover;
        ScorerUnreachable after."""
        attempts = self.max_retries + 1
        detail = ""
        for attempt in range(1, attempts + 1):
            try:
                response = httpx.request(
                    "GET" if payload is None else "POST",
                    url,
                    json=payload,
                    headers=self._headers(),
                    timeout=self.timeout_s,
                )
            except httpx.TimeoutException:
                detail = f"timed out after {self.timeout_s}s (set serving.timeout_s to wait longer)"
            except httpx.TransportError as exc:
                detail = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                if response.status_code < 500:
                    return self._accept(url=url, response=response)
                detail = f"HTTP {response.status_code}: {_server_message(response)}"
            if attempt < attempts:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise ScorerUnreachable(url=url, detail=detail, attempts=attempts)

    def _accept(self, *, url: str, response: httpx.Response) -> dict[str, Any]:
        """A 2xx body as a dict; a 4xx as ValueError with the server's message (never retried)."""
        status = response.status_code
        if status == 401:
            raise ValueError(
                f"{url} wants a bearer token (HTTP 401: {_server_message(response)}); set "
                f"{self.token_env or 'serving.token_env'} to the token the service was started with"
            )
        if not 200 <= status < 300:
            raise ValueError(
                f"{url} rejected the request (HTTP {status}): {_server_message(response)}"
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise ValueError(f"{url} answered non-JSON; is it an `rs-pipeline serve`?") from exc
        if not isinstance(body, dict):
            raise ValueError(f"{url} answered {body!r:.200}; expected a JSON object")
        return body


def _encode_all(images: Sequence[ImageLike]) -> list[str]:
    """Each image's base64, encoding a repeated object once (best-of-N repeats one per answer)."""
    cache: dict[int, str] = {}
    return [cache.setdefault(id(image), encode_image(image)) for image in images]


def _runs(keys: Sequence[tuple[str, str | None]], *, limit: int) -> list[tuple[int, int]]:
    """`[start, stop)` runs of consecutive equal keys, each at most `limit` long."""
    runs: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[start] or i - start >= limit:
            runs.append((start, i))
            start = i
    return runs


class RemoteScorer:
    """The scorer protocol (`score(images, texts, questions)`) over a running scorer service.

    Consecutive pairs that share an image and question go in one `/v1/score` request (at most
    `batch_size` texts, the service's `max_texts`), so best-of-N answers to one question cost
    one round trip; the service batches requests into forward passes itself.
    """

    backend = "remote"

    def __init__(self, client: RewardClient, *, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.client, self.batch_size = client, batch_size

    @classmethod
    def from_config(cls, settings: ServingConfig, url: str | None = None) -> RemoteScorer:
        """A scorer over `url` (else `settings.url`), sending up to `max_texts` per request."""
        return cls(RewardClient.from_config(settings, url=url), batch_size=settings.max_texts)

    def __repr__(self) -> str:
        return f"RemoteScorer(url={self.client.url!r})"

    def score(
        self,
        images: Sequence[ImageLike],
        texts: Sequence[str],
        questions: Sequence[str | None] | None = None,
        batch_size: int | None = None,
    ) -> list[float]:
        """One score per (image, text, question), in order."""
        if len(images) != len(texts):
            raise ValueError(f"got {len(images)} images but {len(texts)} texts; pass one each")
        if questions is not None and len(questions) != len(texts):
            raise ValueError(f"got {len(questions)} questions for {len(texts)} texts; one or None")
        asked = list(questions) if questions is not None else [None] * len(texts)
        encoded = _encode_all(images)
        keys = list(zip(encoded, asked, strict=True))
        out: list[float] = []
        for start, stop in _runs(keys, limit=batch_size or self.batch_size):
            out += self.client.score(
                image_b64=encoded[start], texts=texts[start:stop], question=asked[start]
            )
        return out
