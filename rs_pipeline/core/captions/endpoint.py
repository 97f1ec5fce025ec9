"""Captioner and VLM-as-judge over an OpenAI-compatible chat-completions endpoint (vLLM).

Retries, timeouts and rate limiting live here and only here: this is the network boundary.
The API key is read from an environment variable at call time, so it is never held in a
config, a repr or an error message.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

from rs_pipeline.core.captions.base import Candidate, Ranking, SampleView
from rs_pipeline.core.config import EndpointSettings
from rs_pipeline.core.prompts import CAPTION_PROMPT

DEFAULT_JUDGE_PROMPT = (
    "Below are {n} candidate descriptions of this remote-sensing image.\n\n{candidates}\n\n"
    "Rank all {n} candidates from best to worst by how accurately, completely and specifically "
    "they describe the image. Answer with the candidate numbers only, best first, separated "
    "by '>', for example: {example}"
)


class EndpointError(RuntimeError):
    """A chat completion that failed for good: after retries, or rejected outright."""

    def __init__(self, message: str, status: int | None, attempts: int) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


@dataclass(frozen=True)
class _Failure:
    """One failed attempt: what went wrong and whether trying again can help."""

    status: int | None
    detail: str
    retryable: bool
    retry_after: float | None = None


class _RateLimiter:
    """Spaces request starts at least 1/rate apart across all threads of one client."""

    def __init__(self, rate: float, clock: Callable[[], float], sleep: Callable[[float], None]):
        if rate <= 0:
            raise ValueError(f"max_requests_per_s must be > 0, got {rate}")
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until this caller's slot; slots are reserved under the lock, slept outside."""
        with self._lock:
            now = self._clock()
            start = now if self._next is None else max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


def image_message(image: Image.Image, text: str) -> dict[str, Any]:
    """A user message carrying `image` as a base64 PNG data URL, then `text`."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": text},
        ],
    }


def _message_content(body: Any) -> str | None:
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # absent, or an HTTP date: fall back to our own backoff


class ChatClient:
    """Posts chat completions to `{base_url}/chat/completions`; thread-safe.

    `settings` is the config section itself (server, model, key variable, retries, rate).
    The backoff and payload defaults are keyword arguments, not config keys: no user has
    needed to tune them, and tests pass their own.
    """

    image_message = staticmethod(image_message)

    def __init__(
        self,
        settings: EndpointSettings,
        *,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_tokens: int = 128,
        temperature: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.url = f"{settings.base_url.rstrip('/')}/chat/completions"
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.max_tokens, self.temperature = max_tokens, temperature
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._limiter = (
            _RateLimiter(settings.max_requests_per_s, clock, sleep)
            if settings.max_requests_per_s
            else None
        )
        self._http = httpx.Client(timeout=httpx.Timeout(settings.timeout_s))

    def __repr__(self) -> str:
        return f"ChatClient(url={self.url!r}, model={self.settings.model!r})"

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(self, messages: Sequence[Mapping[str, Any]], **overrides: Any) -> str:
        """The assistant's reply text; `overrides` (e.g. temperature, seed) join the payload."""
        payload = {
            "model": self.settings.model,
            "messages": list(messages),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            **overrides,
        }
        attempts = self.settings.max_retries + 1  # max_retries counts retries after the first
        for attempt in range(1, attempts + 1):
            if self._limiter is not None:
                self._limiter.acquire()
            outcome = self._attempt(payload)
            if isinstance(outcome, str):
                return outcome
            if not outcome.retryable:
                raise self._rejected(outcome, attempt)
            if attempt < attempts:
                self._sleep(self._backoff(attempt, outcome.retry_after))
        raise self._exhausted(outcome, attempts)

    def _api_key(self) -> str | None:
        # Read at each call, not kept: a rotated key takes effect and no object holds it.
        env = self.settings.api_key_env
        return (os.environ.get(env) or None) if env else None

    def _attempt(self, payload: dict[str, Any]) -> str | _Failure:
        key = self._api_key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            response = self._http.post(self.url, json=payload, headers=headers)
        except httpx.TimeoutException as exc:
            return _Failure(None, f"timed out after {self.settings.timeout_s}s ({exc!r})", True)
        except httpx.TransportError as exc:
            return _Failure(None, f"connection failed ({exc!r})", True)
        status = response.status_code
        snippet = self._redact(response.text[:300])
        if status == 429 or status >= 500:
            return _Failure(status, f"HTTP {status}: {snippet}", True, _retry_after(response))
        if not 200 <= status < 300:
            return _Failure(status, f"HTTP {status}: {snippet}", False)
        try:
            body = response.json()
        except ValueError:  # JSONDecodeError and UnicodeDecodeError both subclass it
            return _Failure(status, f"reply is not JSON: {snippet!r}", True)
        content = _message_content(body)
        if content is None:
            return _Failure(status, f"reply has no choices[0].message.content: {snippet}", True)
        return content

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cap = self.max_backoff_s
        delay = min(cap, self.backoff_s * 2 ** (attempt - 1))
        # Jitter, so workers that failed together do not all come back at the same instant.
        delay *= 0.5 + 0.5 * self._rng.random()
        if retry_after is not None:
            delay = max(delay, min(retry_after, cap))
        return delay

    def _redact(self, text: str) -> str:
        key = self._api_key()
        return text.replace(key, "***") if key else text

    def _exhausted(self, failure: _Failure, attempts: int) -> EndpointError:
        cfg = self.settings
        message = (
            f"chat completion at {self.url} (model {cfg.model!r}) failed after {attempts} "
            f"attempt(s); last status {failure.status}, last error: {failure.detail}. "
            f"Check that base_url {cfg.base_url!r} is right and that the OpenAI-compatible "
            f"server (e.g. `vllm serve {cfg.model}`) is up, serving that model, and answers "
            f"within timeout_s={cfg.timeout_s}."
        )
        return EndpointError(self._redact(message), failure.status, attempts)

    def _rejected(self, failure: _Failure, attempts: int) -> EndpointError:
        cfg = self.settings
        hint = (
            f"Check the model name {cfg.model!r} against the server's /models at "
            f"{cfg.base_url!r}, and max_tokens/image size against its limits."
        )
        if failure.status in (401, 403):
            env = cfg.api_key_env
            state = "set" if self._api_key() else "unset"
            hint = f"Check the API key in ${env} ({state})." if env else "Set api_key_env."
        message = (
            f"chat completion at {self.url} rejected with HTTP {failure.status} after "
            f"{attempts} attempt(s), not retried: {failure.detail}. {hint}"
        )
        return EndpointError(self._redact(message), failure.status, attempts)


class EndpointCaptioner:
    """One caption per request; a request that fails for good becomes a `failed` row."""

    def __init__(
        self,
        client: ChatClient,
        prompt: str = CAPTION_PROMPT,
        prompt_version: str = "p1",
        per_image: int = 1,
        max_workers: int = 4,
        sample_temperature: float = 0.7,
    ) -> None:
        if per_image < 1 or max_workers < 1:
            raise ValueError(f"per_image and max_workers must be >= 1: {per_image}, {max_workers}")
        self.client = client
        self.prompt = prompt
        self.per_image = per_image
        self.max_workers = max_workers
        # Several captions of one image at temperature 0 would be identical: sample instead.
        self.sample_temperature = sample_temperature
        self.id = f"vlm-endpoint:{client.settings.model}@{prompt_version}"

    def caption(self, samples: Sequence[SampleView]) -> list[Candidate]:
        """`per_image` candidates per sample, in input order."""
        jobs = [(s, k) for s in samples for k in range(self.per_image)]
        if not jobs:
            return []
        workers = min(self.max_workers, len(jobs))
        with ThreadPoolExecutor(workers, thread_name_prefix="vlm-endpoint") as pool:
            return list(pool.map(self._one, jobs))

    def _one(self, job: tuple[SampleView, int]) -> Candidate:
        sample, k = job
        overrides: dict[str, Any] = {}
        if self.per_image > 1:
            overrides = {"temperature": self.sample_temperature, "seed": k}
        try:
            text = self.client.complete([image_message(sample.image, self.prompt)], **overrides)
        except EndpointError as exc:
            return Candidate(sample.sample_id, self.id, "", status="failed", error=str(exc))
        if not text.strip():
            error = "endpoint returned an empty caption; check the prompt and max_tokens"
            return Candidate(sample.sample_id, self.id, "", status="failed", error=error)
        return Candidate(sample.sample_id, self.id, text.strip())


_REF = r"(?:(?:candidate|caption|description)\s*#?\s*|#)?"
_CHAIN = re.compile(rf"{_REF}\d+(?:\s*>\s*{_REF}\d+)+", re.IGNORECASE)
_BRACKETS = re.compile(r"\[\s*\d+(?:\s*,\s*\d+)*\s*\]")
_LABEL = re.compile(r"\b(?:ranking|order|answer)\s*[:=]", re.IGNORECASE)
_NUMBER = re.compile(r"\b\d+\b")
_JSON_KEYS = ("ranking", "order", "rank")


def _json_numbers(reply: str) -> list[int] | None:
    start, end = reply.find("{"), reply.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        body = json.loads(reply[start : end + 1])
    except json.JSONDecodeError:
        return None
    values = next((body[k] for k in _JSON_KEYS if isinstance(body, dict) and k in body), None)
    if not isinstance(values, list):
        return None
    return [int(v) for v in values if isinstance(v, int | str) and str(v).strip().isdigit()]


def _number_runs(reply: str) -> list[list[int]]:
    """Readings of the reply, most specific first: JSON, `a > b`, `[a, b]`, `Ranking:`, all."""
    runs = []
    from_json = _json_numbers(reply)
    if from_json is not None:
        runs.append(from_json)
    for pattern in (_CHAIN, _BRACKETS):
        found = pattern.findall(reply)
        if found:
            runs.append([int(x) for x in _NUMBER.findall(found[-1])])  # the final answer wins
    labels = list(_LABEL.finditer(reply))
    if labels:
        runs.append([int(x) for x in _NUMBER.findall(reply[labels[-1].end() :])])
    runs.append([int(x) for x in _NUMBER.findall(reply)])
    return runs


def named_candidates(reply: str, n: int) -> list[int]:
    """0-based indices the reply names (1-based there), valid and de-duplicated, in order."""
    for run in _number_runs(reply):
        named: list[int] = []
        for number in run:
            if 1 <= number <= n and number - 1 not in named:
                named.append(number - 1)
        if named:
            return named
    return []


def parse_ranking(reply: str, n: int) -> tuple[int, ...] | None:
    """0-based order best first from a judge reply; omitted candidates follow in input order."""
    named = named_candidates(reply, n)
    if not named:
        return None
    return (*named, *(i for i in range(n) if i not in named))


class EndpointJudge:
    """VLM-as-judge: the image and all candidates in one prompt, answered with a ranking."""

    def __init__(
        self,
        client: ChatClient,
        prompt: str = DEFAULT_JUDGE_PROMPT,
        prompt_version: str = "p1",
    ) -> None:
        self.client = client
        self.prompt = prompt
        self.id = f"vlm-judge:{client.settings.model}@{prompt_version}"
        self.failures: list[tuple[str, str]] = []  # (sample_id, why no ranking)
        self._lock = threading.Lock()

    def prompt_for(self, texts: Sequence[str]) -> str:
        """The judge prompt with `texts` numbered from 1."""
        listing = "\n".join(f"{i}. {text}" for i, text in enumerate(texts, 1))
        example = " > ".join(str(i) for i in [2, 1, *range(3, len(texts) + 1)])
        return self.prompt.format(n=len(texts), candidates=listing, example=example)

    def rank(self, sample: SampleView, candidates: Sequence[Candidate]) -> Ranking | None:
        """Ranking of all candidates (failed ones last); None, recorded in `failures`, else."""
        usable = [i for i, c in enumerate(candidates) if c.status == "ok" and c.text.strip()]
        unusable = tuple(i for i in range(len(candidates)) if i not in usable)
        note = f"; failed/empty candidates {list(unusable)} ranked last" if unusable else ""
        if not usable:
            return self._fail(sample, "no usable candidates: all failed or empty")
        if len(usable) == 1:
            return Ranking((usable[0], *unusable), reason="one usable candidate" + note)
        texts = [candidates[i].text for i in usable]
        try:
            reply = self.client.complete([image_message(sample.image, self.prompt_for(texts))])
        except EndpointError as exc:
            return self._fail(sample, str(exc))
        named = named_candidates(reply, len(usable))
        if not named:
            return self._fail(
                sample, f"judge reply names no candidate 1..{len(usable)}: {reply[:200]!r}"
            )
        omitted = [i for i in range(len(usable)) if i not in named]
        order = tuple(usable[i] for i in (*named, *omitted)) + unusable
        reason = f"judge reply: {reply.strip()[:200]!r}"
        if omitted:
            reason += f"; candidates {[usable[i] for i in omitted]} not named, appended in order"
        return Ranking(order, reason=reason + note)

    def _fail(self, sample: SampleView, reason: str) -> None:
        with self._lock:
            self.failures.append((sample.sample_id, reason))
        return None
