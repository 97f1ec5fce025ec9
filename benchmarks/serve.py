"""The scorer service under load: dynamic batching against one-pair-per-call scoring.

    .venv/bin/python -m benchmarks.serve [--requests 400]    # from the repo root
    .venv/bin/python -m benchmarks.serve --quick [--out DIR]   # 40 requests, concurrency 1, 4

A child process builds a real tiny scorer (`ClipHeadScorer(seed=0)`, random weights: speed
does not depend on them) and serves it twice on loopback: with dynamic batching (max_batch 32,
max_wait 5 ms) and without (max_batch 1: each pair is its own forward pass). This process
sends /v1/rewards requests (two completions of one 64x64 PNG each) from 1, 2, 4, ... 32
threads, one httpx client apiece, the same number of requests per level split evenly over the
threads; the two modes alternate which goes first per level, so drift in the machine's load
does not favour one. Clients and server live in separate processes so the server's event loop
does not share a GIL with 32 client threads; they do share the machine's cores. Results go to
benchmarks/RESULTS.md (under --out DIR instead; nowhere for --quick alone).
"""

from __future__ import annotations

import argparse
import base64
import io
import math
import multiprocessing as mp
import re
import threading
import time
from dataclasses import dataclass

import httpx
from PIL import Image

from benchmarks.machine import add_output_options, describe, results_file, write_section

LEVELS = (1, 2, 4, 8, 16, 32)
QUICK_LEVELS = (1, 4)
MODES = {"batched": {"max_batch": 32, "max_wait_ms": 5.0}, "max_batch 1": {"max_batch": 1}}


def _serve_child(conn) -> None:
    """Child process: one scorer, one server per mode; URLs out, then wait for "stop"."""
    from rs_pipeline.core.config import ServingConfig
    from rs_pipeline.core.scoring.clip_head import ClipHeadScorer
    from rs_pipeline.core.serving.app import create_app
    from rs_pipeline.core.serving.server import start_in_thread

    scorer = ClipHeadScorer(seed=0).eval()
    servers = {}
    for mode, limits in MODES.items():
        settings = ServingConfig(token_env=None, **limits)
        app = create_app(scorer, scorer_version="clip-head-bench", settings=settings)
        servers[mode] = start_in_thread(app, "127.0.0.1", 0)
    conn.send({mode: s.url for mode, s in servers.items()})
    conn.recv()  # the parent is done
    for s in servers.values():
        s.stop()


@dataclass(frozen=True)
class LoadResult:
    """One (mode, concurrency) run."""

    mode: str
    concurrency: int
    requests: int
    errors: int
    wall_s: float
    latencies_s: tuple[float, ...]
    pairs_per_call: float

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _body() -> dict:
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(buf, format="PNG")
    return {
        "model": "bench",
        "problem_description": "What land cover dominates this tile?",
        "image_data": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(),
        "completion1": "A dense forest with a river crossing it from north to south.",
        "completion2": "Farmland.",
    }


def _batch_stats(url: str) -> tuple[float, float]:
    """(pairs scored, scorer calls) so far, from the server's own /metrics."""
    text = httpx.get(f"{url}/metrics").text
    total = float(re.search(r"^rs_serve_batch_size_sum (\S+)$", text, re.M).group(1))
    calls = float(re.search(r"^rs_serve_batch_size_count (\S+)$", text, re.M).group(1))
    return total, calls


def _client(url: str, body: dict, n: int, start: threading.Barrier, out: list) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("/v1/rewards", json=body)  # connect before the clock starts
        start.wait()
        for _ in range(n):
            t = time.perf_counter()
            ok = client.post("/v1/rewards", json=body).status_code == 200
            out.append((time.perf_counter() - t, ok))


def run_load(url: str, *, mode: str, concurrency: int, requests: int) -> LoadResult:
    """`requests` /v1/rewards calls from `concurrency` threads at once; latency per call."""
    body, per_thread = _body(), max(1, requests // concurrency)
    results: list[tuple[float, bool]] = []
    start = threading.Barrier(concurrency + 1)
    threads = [
        threading.Thread(target=_client, args=(url, body, per_thread, start, results))
        for _ in range(concurrency)
    ]
    for t in threads:
        t.start()
    before = _batch_stats(url)
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    after = _batch_stats(url)
    pairs, calls = after[0] - before[0], after[1] - before[1]
    return LoadResult(
        mode=mode,
        concurrency=concurrency,
        requests=len(results),
        errors=sum(not ok for _, ok in results),
        wall_s=wall,
        latencies_s=tuple(lat for lat, _ in results),
        pairs_per_call=pairs / calls if calls else float("nan"),
    )


def _row(batched: LoadResult, single: LoadResult) -> str:
    cells = [str(batched.concurrency)]
    for r in (batched, single):
        cells += [f"{r.rps:.0f}", f"{r.percentile_ms(0.5):.1f}", f"{r.percentile_ms(0.99):.1f}"]
    cells += [f"{batched.pairs_per_call:.1f}", f"{batched.rps / single.rps:.2f}x"]
    return "| " + " | ".join(cells) + " |"


def report(results: list[LoadResult], *, requests: int) -> str:
    """The RESULTS.md section: one row per concurrency level, both modes side by side."""
    by = {(r.mode, r.concurrency): r for r in results}
    levels = sorted({r.concurrency for r in results})
    errors = sum(r.errors for r in results)
    rows = [_row(by["batched", c], by["max_batch 1", c]) for c in levels]
    return "\n".join(
        [
            "## Scorer service under load (`python -m benchmarks.serve`)",
            "",
            f"Machine: {describe()}. `rs-pipeline serve`'s app on uvicorn, loopback, serving",
            "`ClipHeadScorer(seed=0)` (rs-resnet-tiny-64 towers, CPU) in a child process;",
            f"{requests} POST /v1/rewards per level and mode (2 completions of one 64x64 PNG",
            "each; rounded down to a multiple of the concurrency), split over that many threads,",
            "one httpx client each. Batched: max_batch 32, max_wait 5 ms. max_batch 1: one pair",
            "per forward pass (2 calls per request). Latencies are client-side; "
            f"{errors} requests failed.",
            "Clients and server share the machine's cores.",
            "",
            "| concurrency | batched req/s | p50 ms | p99 ms | max_batch 1 req/s | p50 ms "
            "| p99 ms | pairs per call (batched) | batched / max_batch 1 |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "At concurrency 1 there is no other request to batch with: a request's own two pairs",
            "share one call, but each batch first waits up to 5 ms for company, which can cost",
            "more than the call it saves. Beyond that the gain follows the pairs per call.",
        ]
    )


def measure(urls: dict[str, str], *, levels: tuple[int, ...], requests: int) -> list:
    results = []
    for i, c in enumerate(levels):
        order = list(MODES) if i % 2 == 0 else list(reversed(MODES))
        for mode in order:
            r = run_load(urls[mode], mode=mode, concurrency=c, requests=requests)
            p50, p99 = r.percentile_ms(0.5), r.percentile_ms(0.99)
            line = f"c={c:>2} {mode:<11} {r.rps:6.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
            print(f"{line}  pairs/call {r.pairs_per_call:4.1f}  errors {r.errors}")
            results.append(r)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=None, help="per concurrency level and mode (default 400)"
    )
    add_output_options(parser, "40 requests, concurrency 1 and 4")
    args = parser.parse_args()
    requests = args.requests or (40 if args.quick else 400)
    levels = QUICK_LEVELS if args.quick else LEVELS
    ctx = mp.get_context("spawn")  # a clean child: no threads or torch state inherited
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve_child, args=(child,), daemon=True)
    server.start()
    try:
        if not parent.poll(180):  # building the scorer takes seconds, not minutes
            raise RuntimeError("the server process sent no URLs within 180 s: see its output")
        urls = parent.recv()
        results = measure(urls, levels=levels, requests=requests)
    finally:
        parent.send("stop")
        server.join(30)
    body = report(results, requests=requests)
    write_section("serve", body, results_file(args))
    print(body)


if __name__ == "__main__":
    main()
