"""Training jobs that run outside the Dagster step's process, under `torchrun`.

`train.py` is the entry point (`torchrun --nproc_per_node N -m rs_pipeline.jobs.train JOB`),
`spec.py` the typed job an asset writes, `probe.py` tiny synthetic runs of each trainer
(tests and benchmarks), `metadata.py` the materialization metadata both launch paths report.
Not part of `core`: rank 0 talks Dagster Pipes here.
"""
