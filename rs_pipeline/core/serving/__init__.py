"""`rs-pipeline serve`: one registered scorer version behind an HTTP API (FastAPI on uvicorn).

`batcher` groups concurrent requests' pairs into one `scorer.score` call; `wire` holds the
request/response formats and the guarded image decoding; `guard` refuses unauthenticated and
oversized requests before their body is buffered; `metrics` is the Prometheus side; `app` wires
the routes; `server` loads a stored scorer and runs uvicorn (or a test server in a thread).
Modules are imported one by one, so this package's import stays light.
"""
