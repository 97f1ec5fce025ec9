"""The torchrun entry point of every trainer: `torchrun --nproc_per_node N -m
rs_pipeline.jobs.train JOB` (JOB: a JSON file or inline JSON, see spec.py).

Every rank joins the process group and runs the same stage; rank 0 alone opens Dagster Pipes
(when launched by it) and sends back log lines, per-step metrics and the final
materialization; the other ranks log nothing and write nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from rs_pipeline.core.progress import StepLog
from rs_pipeline.core.training import distributed
from rs_pipeline.jobs.spec import TrainJob, read_job


def _device(job: TrainJob) -> str:
    from rs_pipeline.core.device import resolve_device

    if job.kind == "probe":
        return "cpu"
    return resolve_device(job.config.get("compute", {}).get("device", "auto"))


def run_job(job: TrainJob, log: Callable[[str], None] | None, report) -> None:
    """Run `job` on this rank; `report(outcome)` on rank 0 with what it produced."""
    if job.kind == "probe":
        from rs_pipeline.jobs.metadata import probe_outcome
        from rs_pipeline.jobs.probe import run_probe

        outcome = probe_outcome(run_probe(job.probe, log))
    else:
        from rs_pipeline.jobs.stages import run_stage

        outcome = run_stage(job, log)
    if distributed.world().is_main and outcome is not None:
        report(outcome)


def _pipes_session(job: TrainJob) -> None:
    """Rank 0: the job under Dagster Pipes when launched by it, else with print."""
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    from rs_pipeline.jobs.metadata import report_to_pipes

    if not PipesEnvVarParamsLoader().is_dagster_pipes_process():
        run_job(job, print, lambda outcome: print(outcome))
        return
    with open_dagster_pipes() as pipes:
        # Each Pipes log line becomes a run-log event, as in process: the same StepLog pace.
        log = StepLog(pipes.log.info)
        run_job(job, log, lambda outcome: report_to_pipes(pipes, outcome))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            "usage: torchrun --nproc_per_node N -m rs_pipeline.jobs.train JOB.json", file=sys.stderr
        )
        return 2
    job = read_job(args[0])
    w = distributed.init_from_env(_device(job))
    try:
        if w.is_main:
            _pipes_session(job)
        else:
            run_job(job, None, lambda _: None)
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
