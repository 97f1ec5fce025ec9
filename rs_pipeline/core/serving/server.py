"""Run the scorer service: `serve` (the CLI's, until a signal) or `start_in_thread` (tests).

`serve` loads the scorer `score_model` stored for one version and hands the app to uvicorn,
whose signal handling turns SIGINT/SIGTERM into a graceful stop: no new connections, in-flight
requests finish, then the app's lifespan drains the batcher.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.config import PipelineConfig
from rs_pipeline.core.device import resolve_device
from rs_pipeline.core.scoring.apply import stored_scorer
from rs_pipeline.core.scoring.base import Scorer
from rs_pipeline.core.scoring.versions import current_version, versions
from rs_pipeline.core.serving.app import bearer_token, create_app

# A stuck client must not hold a stopping server forever; 30 s covers any scoring call.
SHUTDOWN_GRACE_S = 30.0
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class ServeError(RuntimeError):
    """The server cannot start: an unknown version, or one without a stored scorer."""


def resolve_version(cfg: PipelineConfig, version: str) -> str:
    """`version` itself, or `current`'s version key; ServeError listing the known ones."""
    known = sorted(versions(cfg))
    if version == "current":
        try:
            return current_version(cfg)
        except KeyError as err:
            raise ServeError(f"{err.args[0]}; known versions: {', '.join(known)}") from None
    if version not in known:
        raise ServeError(
            f"scorer version {version!r} is not defined by this configuration; known versions: "
            f"{', '.join(known) or '(none)'}; pass one of them (or `current`) to --scorer"
        )
    return version


def load_served_scorer(cfg: PipelineConfig, version: str) -> tuple[Scorer, str]:
    """(scorer on the configured device, its version key) for `version` (or `current`)."""
    version = resolve_version(cfg, version)
    store = ArtifactStore(cfg.storage.root, cfg.storage.storage_options)
    try:
        scorer = stored_scorer(store, version)
    except FileNotFoundError as err:
        raise ServeError(str(err)) from None
    to = getattr(scorer, "to", None)
    if callable(to):  # a torch module: onto the GPU when compute.device allows
        scorer = to(resolve_device(cfg.compute.device))
        scorer.eval()
    return scorer, version


def _open_warning(host: str, token_env: str | None) -> str:
    where = "" if host in LOOPBACK else f" on {host}, which other machines can reach"
    fix = f": set {token_env} to require one" if token_env else ": set serving.token_env"
    return f"rs-pipeline serve: no bearer token required{where}{fix}"


def serve(cfg: PipelineConfig, version: str, *, host: str | None = None, port: int | None = None):
    """Serve the stored scorer of `version` until SIGINT/SIGTERM; returns after draining."""
    scorer, version = load_served_scorer(cfg, version)
    settings = cfg.serving
    host = host or settings.host
    port = settings.port if port is None else port
    app = create_app(scorer, scorer_version=version, settings=settings)
    if bearer_token(settings.token_env) is None:
        print(_open_warning(host, settings.token_env), file=sys.stderr)
    print(f"rs-pipeline serve: {version} on http://{host}:{port}", file=sys.stderr)
    uvicorn.run(
        app,
        host=host,
        port=port,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        log_level="info",
    )


@dataclass
class RunningServer:
    """A uvicorn server in a background thread; `stop()` (or leaving `with`) shuts it down."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful stop, as a signal would: in-flight requests finish, the batcher drains."""
        self.server.should_exit = True
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            raise RuntimeError(f"the server at {self.url} did not stop within {timeout_s} s")

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    return sock


def start_in_thread(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, timeout_s: float = 10.0
) -> RunningServer:
    """Run `app` on `host:port` in a daemon thread; port 0 picks a free one (see `.url`)."""
    # Binding here, not in uvicorn, tells us the port before the server starts.
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=SHUTDOWN_GRACE_S
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="rs-serve", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError("the server exited while starting: see its log above")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the server did not start within {timeout_s} s")
        time.sleep(0.01)
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    return RunningServer(url=f"http://{url_host}:{bound_port}", server=server, thread=thread)
