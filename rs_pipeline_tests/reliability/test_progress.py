"""`Progress`: a line at most every `every_s` seconds and at the end, with rate and ETA."""

from rs_pipeline.core.progress import Progress, clock


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
