"""The scorer service: `create_app(scorer, scorer_version=..., settings=...)` -> a FastAPI app.

Endpoints (formats in `wire`):
  POST /v1/rewards  the paper's RL reward format: two completions, one image, one problem
  POST /v1/score    any texts (at most serving.max_texts) against one image
  GET  /healthz     liveness; open even with a token set, so probes need no secret
  GET  /metrics     Prometheus text (behind the token when one is set: it shows traffic)

Errors are `{"detail": ...}` with a 4xx, and the server keeps serving: 422 malformed JSON,
missing fields or wrong types; 400 bad base64 or an undecodable image; 413 a body over
max_body_bytes, an image over max_image_pixels, or too many texts; 401 a missing or wrong bearer
token when the env var named by `serving.token_env` is set (read once, when the app is made).
A scorer exception fails that batch's requests with 500; 503 while the server drains.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from PIL import Image

from rs_pipeline.core.config import ServingConfig
from rs_pipeline.core.scoring.base import Scorer
from rs_pipeline.core.serving.batcher import Batcher, BatcherClosed, ScoreItem, ScorerFailed
from rs_pipeline.core.serving.guard import GuardMiddleware
from rs_pipeline.core.serving.metrics import CONTENT_TYPE, MetricsMiddleware, ServingMetrics
from rs_pipeline.core.serving.wire import (
    BadImage,
    CompletionScore,
    Health,
    ImageTooLarge,
    RewardRequest,
    RewardResponse,
    ScoreRequest,
    ScoreResponse,
    decode_image,
)

ENDPOINTS = frozenset({"/v1/rewards", "/v1/score", "/healthz", "/metrics"})
OPEN_PATHS = frozenset({"/healthz"})


def bearer_token(token_env: str | None) -> str | None:
    """The token clients must send: the value of the env var `token_env`; None: open."""
    if not token_env:
        return None
    # An empty value is treated as unset: a token of "" would be no protection at all.
    return os.environ.get(token_env) or None


@dataclass(frozen=True)
class _Service:
    """What the routes share: the batcher, the served version and the limits."""

    batcher: Batcher
    scorer_version: str
    settings: ServingConfig

    async def image(self, image_data: str) -> Image.Image:
        try:
            # Base64 and PNG decoding of a few MB take tens of ms: off the event loop.
            return await asyncio.to_thread(
                decode_image, image_data, max_pixels=self.settings.max_image_pixels
            )
        except BadImage as err:
            raise HTTPException(status_code=400, detail=str(err)) from None
        except ImageTooLarge as err:
            raise HTTPException(status_code=413, detail=str(err)) from None

    async def score(self, items: Sequence[ScoreItem]) -> list[float]:
        try:
            return await self.batcher.score(items)
        except ScorerFailed as err:
            raise HTTPException(status_code=500, detail=f"scoring failed: {err}") from None
        except BatcherClosed as err:
            raise HTTPException(status_code=503, detail=f"{err}; retry") from None


def _add_routes(app: FastAPI, service: _Service, metrics: ServingMetrics) -> None:
    @app.post("/v1/rewards", response_model=RewardResponse)
    async def rewards(req: RewardRequest) -> RewardResponse:
        image = await service.image(req.image_data)
        completions = {"completion1": req.completion1, "completion2": req.completion2}
        items = [ScoreItem(image, text, req.problem_description) for text in completions.values()]
        scores = await service.score(items)
        return RewardResponse(
            model=req.model,
            scores=[
                CompletionScore(completion_id=cid, score=s)
                for cid, s in zip(completions, scores, strict=True)
            ],
        )

    @app.post("/v1/score", response_model=ScoreResponse)
    async def score(req: ScoreRequest) -> ScoreResponse:
        limit = service.settings.max_texts
        if len(req.texts) > limit:
            raise HTTPException(
                status_code=413,
                detail=f"got {len(req.texts)} texts; at most {limit} per request "
                "(serving.max_texts): split them over several requests",
            )
        image = await service.image(req.image_data)
        scores = await service.score([ScoreItem(image, t, req.question) for t in req.texts])
        return ScoreResponse(model=service.scorer_version, scores=scores)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok", scorer_version=service.scorer_version)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(content=metrics.render(), media_type=CONTENT_TYPE)


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    """422 naming each bad field, without echoing its value (it may be megabytes of base64)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
    return JSONResponse(status_code=422, content={"detail": detail})


def create_app(
    scorer: Scorer,
    *,
    scorer_version: str,
    settings: ServingConfig,
    batching: bool = True,
) -> FastAPI:
    """An app serving `scorer` as `scorer_version`; `batching=False` scores each request alone.

    The scorer runs in one thread of its own, started with the app's lifespan; on shutdown the
    batcher scores what is queued before the thread stops.
    """
    metrics = ServingMetrics()
    batcher = Batcher(
        scorer,
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        dynamic=batching,
        on_batch=metrics.batch_size.observe,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.close()

    token = bearer_token(settings.token_env)
    # No /docs or /redoc: their pages load scripts from a CDN; /openapi.json stays.
    app = FastAPI(
        title="rs-pipeline scorer",
        version=scorer_version,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(RequestValidationError, _invalid_request)
    _add_routes(app, _Service(batcher, scorer_version, settings), metrics)
    app.add_middleware(
        GuardMiddleware,
        token=token,
        max_body_bytes=settings.max_body_bytes,
        open_paths=OPEN_PATHS,
    )
    # Added last, so outermost: refusals by the guard are counted too.
    app.add_middleware(MetricsMiddleware, metrics=metrics, endpoints=ENDPOINTS)
    return app
