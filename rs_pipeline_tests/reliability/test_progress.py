"""`Progress`: a line at most every `every_s` seconds and at the end, with rate and ETA."""

from rs_pipeline.core.progress import Progress, StepLog, clock


def test_progress_logs_at_the_interval_and_at_the_end_with_rate_and_eta():
    t = [0.0]
    lines: list[str] = []
    p = Progress(10, lines.append, every_s=5, what="pairs", now=lambda: t[0])
    for _ in range(4):
        t[0] += 2
        p.step()
    assert lines == ["pairs 3/10, 0.50/s, ETA 0:14"]  # at t=6 only
    t[0] += 12
    p.step(6)
    assert lines[-1] == "pairs 10/10, 0.50/s, ETA 0:00" and len(lines) == 2


def test_progress_without_a_log_only_counts():
    p = Progress(2, None)
    p.step(2)
    assert p.done == 2


def test_clock_shows_hours_only_when_there_are_some():
    assert (clock(59.6), clock(61), clock(3725)) == ("1:00", "1:01", "1:02:05")


def test_step_log_keeps_a_step_line_per_interval_the_last_one_and_every_notice():
    t = [0.0]
    lines: list[str] = []
    log = StepLog(lines.append, every_s=10, now=lambda: t[0])
    for step in range(10, 61, 10):  # a line every 10 steps, 3 s apart
        t[0] += 3
        log(f"sft step {step}/60 loss 1.0")
        if step == 30:
            log("sft: resumed at step 30/60")
            log("stage head: early stop, no gain in 4 evaluations")
    assert lines == [
        "sft step 10/60 loss 1.0",
        "sft: resumed at step 30/60",
        "stage head: early stop, no gain in 4 evaluations",
        "sft step 50/60 loss 1.0",  # 12 s after the first
        "sft step 60/60 loss 1.0",  # the total, however soon
    ]
