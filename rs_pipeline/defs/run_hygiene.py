"""Dead CLI runs: mark in-process runs whose process died (kill -9, OOM) as failed.

The CLI launches with `dg.materialize`, in its own process; a run killed there stays STARTED
for ever, since run monitoring (dagster.yaml) only watches runs a run launcher started. So
every run the CLI starts carries its process (`launch_tags`), and each CLI launch first fails
the ones of this host whose process is gone (`fail_dead_runs`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg

PID_TAG = "rs_pipeline/pid"
HOST_TAG = "rs_pipeline/host"
PID_START_TAG = "rs_pipeline/pid_start"  # guards against a reused pid where /proc tells
# In-process runs that have not ended: created, starting or running.
_UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc); None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def launch_tags() -> dict[str, str]:
    """Tags naming this process, for every run it launches in-process."""
    pid = os.getpid()
    tags = {PID_TAG: str(pid), HOST_TAG: socket.gethostname()}
    start = _start_time(pid)
    return tags | ({PID_START_TAG: start} if start else {})


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    now = _start_time(pid)
    return start is None or now is None or now == start


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Report as failed every unfinished run launched on this host by a process now gone.

    Runs without the tags (daemon-launched, other hosts) are left to run monitoring. Returns
    the ids of the runs failed.
    """
    host = socket.gethostname()
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=_UNFINISHED, tags={HOST_TAG: host})
    )
    failed = []
    for record in records:
        run = record.dagster_run
        pid = run.tags.get(PID_TAG, "")
        if not pid.isdigit() or _alive(int(pid), run.tags.get(PID_START_TAG)):
            continue
        instance.report_run_failed(
            run,
            message=f"process {pid} on {host} that ran this in-process run is gone "
            "(killed or crashed); marked failed by the next CLI launch",
        )
        failed.append(run.run_id)
    return failed
