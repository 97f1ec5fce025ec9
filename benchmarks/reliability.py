"""Reliability totals: the reliability suite run once, its cases counted by what they try.

    .venv/bin/python -m benchmarks.reliability                 # from the repo root
    .venv/bin/python -m benchmarks.reliability --quick [--out DIR]   # without `slow` tests

Runs `pytest rs_pipeline_tests/reliability` (plus the concurrent-writers test, which lives by
the lineage store) in a subprocess with `--junitxml`, then sorts every collected case, by its
test id, into bad input tried, a fault survived, or neither (controls, progress views). The
counts come from the collected ids (each parametrised case counts), never a typed number;
rows lost is the sum the reconciliation checks record (`record_property("rows_lost", n)`).
Results go to benchmarks/RESULTS.md (under --out DIR instead; nowhere for --quick alone).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.machine import add_output_options, describe, results_file, write_section

SUITE = "rs_pipeline_tests/reliability"
ELSEWHERE = (  # faults of the issue whose tests live beside the code they exercise
    "rs_pipeline_tests/core/test_lineage.py::"
    "test_two_concurrent_writer_processes_neither_fail_nor_duplicate",
)
BAD_INPUT, FAULT = "bad input", "fault"
# (pattern on `module::test`, what it is, which kind); first match wins, unmatched is neither.
KINDS: tuple[tuple[str, str, str], ...] = (
    (r"test_cli_checks::test_bad_batch_key", BAD_INPUT, "bad --batch key"),
    (r"test_cli_checks::test_missing_source_path", BAD_INPUT, "missing source path"),
    (r"test_half_published_batches::test_(images_without|a_batch_never)", BAD_INPUT,
     "half-published or missing ingest partition"),
    (r"test_ingest_changes::test_(one_image_under|every_conflicting)", BAD_INPUT,
     "one image under two labels"),
    (r"test_ingest_changes::test_animated", BAD_INPUT, "animated image"),
    (r"test_ingest_changes::test_(exif_orientation_6|rotated_jpeg)", BAD_INPUT,
     "EXIF-rotated photo"),
    (r"test_ingest_changes::test_(bytes_after|files_differing|an_end_marker|progressive|"
     r"a_cut_short)", BAD_INPUT, "junk after the JPEG end, cut-short JPEG"),
    (r"test_ingest_inputs::test_a_non_utf8", BAD_INPUT, "file or folder name not UTF-8"),
    (r"test_ingest_inputs::test_a_fifo", BAD_INPUT, "FIFO among the images"),
    (r"test_ingest_inputs::test_.*symlink", BAD_INPUT, "symlink out of its root"),
    (r"test_no_pickle::test_the_ban", BAD_INPUT, "pickled checkpoint"),
    (r"test_preference_import::", BAD_INPUT, "preference-file shape or malformed record"),
    (r"test_ingest_inputs::test_(a_crash_after|a_failed_rerun|on_s3_a_crash)", FAULT,
     "crash mid-write"),
    (r"test_ingest_inputs::test_staging_left_by_a_killed|test_runs_that_die::test_a_(run_of_a_"
     r"dead|reused_pid)", FAULT, "kill -9: dead run, its leftovers"),
    (r"test_runs_that_die::test_a_write_drops_the_temp_orphans", FAULT,
     "temp files of a killed writer"),
    (r"test_runs_that_die::test_(new_training_data|score_model_clears)", FAULT,
     "training cut short, stale snapshot"),
    (r"test_s3_faults::test_a_store_down", FAULT, "S3 server stopped mid-run"),
    (r"test_s3_faults::test_transient_5xx", FAULT, "transient S3 5xx"),
    (r"test_lineage::test_two_concurrent", FAULT, "concurrent lineage writers"),
)  # fmt: skip
# Tests that assert counts reconcile or that no row is lost, besides those recording rows.
RECONCILES = re.compile(r"reconcil|publishes_all|neither_fail_nor_duplicate")


@dataclass
class Case:
    """One collected test case and how it ended."""

    test_id: str  # module::name[param]
    outcome: str  # passed, failed, skipped
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> tuple[str, str] | None:
        """(bad input | fault, kind) this case tries, or None."""
        for pattern, what, kind in KINDS:
            if re.search(pattern, self.test_id):
                return what, kind
        return None


def run_suite(quick: bool, xml: Path) -> tuple[int, float]:
    """Run the suite into `xml`; (pytest's exit code, seconds)."""
    # junit_family=legacy: the default (xunit2) drops what record_property records.
    cmd = [sys.executable, "-m", "pytest", SUITE, *ELSEWHERE, "-q", "--disable-warnings",
           "-p", "no:cacheprovider", f"--junitxml={xml}", "-o", "junit_family=legacy"]  # fmt: skip
    if quick:
        cmd += ["-m", "not slow"]
    start = time.perf_counter()
    code = subprocess.run(cmd, check=False).returncode
    return code, time.perf_counter() - start


def read_cases(xml: Path) -> list[Case]:
    """Every test case in a JUnit XML file."""
    cases = []
    for tc in ET.parse(xml).getroot().iter("testcase"):
        module = tc.get("classname", "").rsplit(".", 1)[-1]
        outcome = "passed"
        if tc.find("failure") is not None or tc.find("error") is not None:
            outcome = "failed"
        elif tc.find("skipped") is not None:
            outcome = "skipped"
        props = {p.get("name"): p.get("value") for p in tc.iter("property")}
        cases.append(Case(f"{module}::{tc.get('name')}", outcome, props))
    return cases


def _kind_table(cases: list[Case], what: str, header: str) -> list[str]:
    tried, passed = Counter(), Counter()
    for c in cases:
        if c.kind and c.kind[0] == what:
            tried[c.kind[1]] += 1
            passed[c.kind[1]] += c.outcome == "passed"
    lines = [f"| {header} | cases | passed |", "|---|---|---|"]
    lines += [f"| {k} | {tried[k]} | {passed[k]} |" for k in sorted(tried)]
    return lines


def report(cases: list[Case], code: int, seconds: float, quick: bool) -> str:
    """The RESULTS.md section."""
    outcomes = Counter(c.outcome for c in cases)
    bad = [c for c in cases if c.kind and c.kind[0] == BAD_INPUT]
    faults = [c for c in cases if c.kind and c.kind[0] == FAULT]
    fault_kinds = {c.kind[1] for c in faults}
    survived = {k for k in fault_kinds if all(c.outcome == "passed" for c in faults
                                               if c.kind[1] == k)}  # fmt: skip
    recorded = [c for c in cases if "rows_lost" in c.properties]
    rows_checked = sum(int(c.properties["rows_checked"]) for c in recorded)
    rows_lost = sum(int(c.properties["rows_lost"]) for c in recorded)
    counted = [c for c in cases if RECONCILES.search(c.test_id) and "rows_lost" not in c.properties]
    scope = "--quick: `slow` tests left out" if quick else "every test"
    lines = [
        "## Reliability (`python -m benchmarks.reliability`)",
        "",
        f"Machine: {describe()}. `pytest {SUITE}` ({scope}) plus "
        f"{len(ELSEWHERE)} concurrency test from `rs_pipeline_tests/core`, in {seconds:.0f} s "
        f"(pytest exit code {code}). Counts are of collected test cases (each parametrised "
        "case once), sorted by test id in `benchmarks/reliability.py`.",
        "",
        f"- tests: {len(cases)}: {outcomes['passed']} passed, {outcomes['failed']} failed, "
        f"{outcomes['skipped']} skipped",
        f"- kinds of bad input tried: {len({c.kind[1] for c in bad})}, in {len(bad)} cases "
        f"({sum(c.outcome == 'passed' for c in bad)} passed)",
        f"- faults survived: {len(survived)} of {len(fault_kinds)} kinds, in {len(faults)} "
        f"cases ({sum(c.outcome == 'passed' for c in faults)} passed)",
        f"- rows lost: {rows_lost} of {rows_checked} checked row by row against an "
        f"uninterrupted run ({len(recorded)} cases), plus "
        f"{sum(c.outcome == 'passed' for c in counted)}/{len(counted)} passed tests asserting "
        "that counts reconcile",
        "",
        *_kind_table(cases, BAD_INPUT, "bad input"),
        "",
        *_kind_table(cases, FAULT, "fault"),
    ]
    if outcomes["failed"]:
        lines += ["", "Failed: " + ", ".join(c.test_id for c in cases if c.outcome == "failed")]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_output_options(parser, "skips `slow` tests")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rs_reliability_") as tmp:
        xml = Path(tmp) / "junit.xml"
        code, seconds = run_suite(args.quick, xml)
        cases = read_cases(xml)
    body = report(cases, code, seconds, args.quick)
    print(body)
    write_section("reliability", body, results_file(args))
    if code not in (0, 1):  # 1: some tests failed, reported above; else pytest itself failed
        raise SystemExit(code)


if __name__ == "__main__":
    main()
