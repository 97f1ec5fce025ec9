"""The UI end to end: a real `dagster-webserver` on loopback, driven by headless Chromium.

The asset graph shows every asset, GraphQL reports their partition definitions, a run launched
through GraphQL materializes one batch, the rest of the chain runs the `rs_pipeline.launch` way
on the same instance, and the report's table and plot show on the `evaluation_report` page.
Screenshots land in `$RS_TEST_ARTIFACTS/ui` (else the test's tmp folder); the path is printed.

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package; skips without them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
import yaml

from rs_pipeline.launch import materialize_evaluation, materialize_scorers
from rs_pipeline_tests.factories import write_config

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BATCH = "2026-11-28"
LOCATION = {"repositoryLocationName": "rs_pipeline", "repositoryName": "__repository__"}
BATCH_ASSETS = ["rs_images", "caption_candidates", "preference_pairs"]
# Each asset's partition dimensions (dimension name -> dynamic partitions definition).
PARTITIONS = {
    "rs_images": {"default": "batch"},
    "caption_candidates": {"default": "batch"},
    "preference_pairs": {"default": "batch"},
    "score_model": {"default": "scorer_version"},
    "pair_scores": {"batch": "batch", "scorer_version": "scorer_version"},
    "curated_subsets": {"default": "scorer_version"},
    "clip_checkpoints": {"default": "selection"},
    "vlm_checkpoints": {"default": "selection"},
    "bon_eval": {"default": "selection"},
    "vlm_rl_checkpoints": {"default": "selection"},
    "evaluation_report": {},
}
INSTALL = "apt-get install chromium chromium-driver` and `pip install selenium"


def _chromium() -> tuple[str, str]:
    """Paths of the system chromium and chromedriver, or skip naming what to install."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip(f"selenium is not installed: `{INSTALL}`")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or shutil.which("chromium-driver")
    if not (browser and driver):
        pytest.skip(f"no chromium/chromedriver on PATH: `{INSTALL}`")
    return browser, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _instance_yaml(home: Path) -> None:
    """The repository's dagster.yaml without its run queue: there is no daemon here (its
    sensors, RUNNING by default, would launch runs of their own), so the webserver launches
    runs at once (DefaultRunCoordinator; Dagster's default is the queue). Pools and the rest
    stay as in the repository's file."""
    data = yaml.safe_load((REPO / "dagster.yaml").read_text())
    data["run_coordinator"] = {
        "module": "dagster._core.run_coordinator",
        "class": "DefaultRunCoordinator",
    }
    data.get("concurrency", {}).pop("runs", None)
    (home / "dagster.yaml").write_text(yaml.safe_dump(data))


class _Server:
    def __init__(self, port: int, proc: subprocess.Popen, log: Path):
        self.url, self.proc, self.log = f"http://127.0.0.1:{port}", proc, log

    def gql(self, query: str, **variables) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        req = urllib.request.Request(
            self.url + "/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            out = json.load(resp)
        assert "errors" not in out, out["errors"]
        return out["data"]

    def wait_ready(self, deadline_s: float = 150) -> None:
        """Until the code location has loaded (its repository is listed)."""
        start = time.monotonic()
        while time.monotonic() - start < deadline_s:
            assert self.proc.poll() is None, f"dagster-webserver exited; see {self.log}"
            try:
                repos = self.gql("{ repositoriesOrError { ... on RepositoryConnection "
                                 "{ nodes { name } } } }")["repositoriesOrError"]  # fmt: skip
                if repos.get("nodes"):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1)
        pytest.fail(f"the webserver did not load the code location in {deadline_s} s; {self.log}")


@pytest.fixture
def server(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    _instance_yaml(home)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump(yaml.safe_load((REPO / "workspace.yaml").read_text())))
    config = write_config(tmp_path)
    env = {**os.environ, "DAGSTER_HOME": str(home), "RS_PIPELINE_CONFIG": config}
    port, log = _free_port(), tmp_path / "webserver.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
             "-w", str(workspace)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    srv = _Server(port, proc, log)
    srv.home, srv.config = home, config
    try:
        srv.wait_ready()
        yield srv
    finally:
        proc.terminate()  # the webserver stops its code server and run workers with it
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def browser(tmp_path):
    binary, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1920,1200"]:  # fmt: skip
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(driver_path), options=opts)
    drv.implicitly_wait(0)
    yield drv
    drv.quit()


@pytest.fixture
def shots(tmp_path) -> Path:
    root = os.environ.get("RS_TEST_ARTIFACTS")
    out = (Path(root) / "ui") if root else tmp_path / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    print(f"UI screenshots: {out}")
    return out


def _wait_for(predicate, what: str, timeout: float = 60, every: float = 0.5):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def _body(drv) -> str:
    from selenium.webdriver.common.by import By

    return drv.find_element(By.TAG_NAME, "body").text


def _dismiss_welcome(drv) -> None:
    """The first visit's 'Join the Dagster community' dialog covers the page."""
    from selenium.webdriver.common.by import By

    for button in drv.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
        if button.is_displayed():
            button.click()


def _expand_all_groups(drv) -> None:
    """The graph opens with its groups collapsed: the settings menu's 'Expand all groups'."""
    from selenium.webdriver.common.by import By

    item = "//*[normalize-space(text())='Expand all groups']"
    for button in drv.find_elements(By.CSS_SELECTOR, "button"):
        if not drv.find_elements(By.XPATH, item) and button.is_displayed():
            box = button.rect
            if box["x"] > drv.get_window_size()["width"] - 200 and box["y"] > 300:
                try:
                    button.click()
                except Exception:  # noqa: BLE001 - a covered zoom button; try the next
                    continue
                time.sleep(0.3)
                if not drv.find_elements(By.XPATH, item):
                    drv.find_element(By.TAG_NAME, "body").send_keys("\ue00c")  # Esc
    drv.find_element(By.XPATH, item).click()


def _check_partition_definitions(srv: _Server) -> None:
    nodes = srv.gql("{ assetNodes { assetKey { path } partitionDefinition "
                    "{ dimensionTypes { name dynamicPartitionsDefinitionName } } } }")  # fmt: skip
    got = {
        "/".join(n["assetKey"]["path"]): {
            d["name"]: d["dynamicPartitionsDefinitionName"]
            for d in (n["partitionDefinition"] or {}).get("dimensionTypes", [])
        }
        for n in nodes["assetNodes"]
    }
    assert got == PARTITIONS


def _launch_batch(srv: _Server) -> str:
    """Register BATCH and run the batch assets for it, both through GraphQL; the run's id."""
    added = srv.gql(
        """mutation($r: RepositorySelector!, $k: String!) {
             addDynamicPartition(repositorySelector: $r, partitionsDefName: "batch",
                                 partitionKey: $k) { __typename ... on PythonError { message } }
           }""",
        r=LOCATION, k=BATCH,
    )["addDynamicPartition"]  # fmt: skip
    assert added["__typename"] == "AddDynamicPartitionSuccess", added
    params = {
        "selector": {
            **LOCATION,
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": [a]} for a in BATCH_ASSETS],
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": BATCH}]},
    }
    launched = srv.gql(
        """mutation($p: ExecutionParams!) {
             launchRun(executionParams: $p) {
               __typename ... on LaunchRunSuccess { run { runId } }
               ... on PythonError { message } ... on InvalidSubsetError { message }
               ... on RunConfigValidationInvalid { errors { message } }
             }
           }""",
        p=params,
    )["launchRun"]  # fmt: skip
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def _run_status(srv: _Server, run_id: str) -> str | None:
    status = srv.gql("query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
                     id=run_id)["runOrError"]["status"]  # fmt: skip
    return status if status in {"SUCCESS", "FAILURE", "CANCELED"} else None


@pytest.mark.slow
def test_ui_shows_the_graph_launches_a_batch_and_renders_the_report(browser, server, shots):
    from selenium.webdriver.common.by import By

    started = time.monotonic()
    # The asset graph: every asset, once its groups are expanded.
    browser.get(server.url + "/asset-groups")
    _wait_for(lambda: "Global asset lineage" in _body(browser), "the asset graph page")
    time.sleep(2)
    _dismiss_welcome(browser)
    _expand_all_groups(browser)
    _wait_for(lambda: all(a in _body(browser) for a in PARTITIONS), "every asset in the graph")
    browser.save_screenshot(str(shots / "01_asset_graph.png"))
    _check_partition_definitions(server)

    # One batch through GraphQL, watched in the UI's runs page.
    run_id = _launch_batch(server)
    status = _wait_for(lambda: _run_status(server, run_id), "the batch run", timeout=150, every=2)
    assert status == "SUCCESS", f"batch run {run_id}: {status}; see {server.log}"
    browser.get(f"{server.url}/runs/{run_id}")
    _wait_for(lambda: "Success" in _body(browser) or "success" in _body(browser), "the run page")
    browser.save_screenshot(str(shots / "02_batch_run.png"))

    # The rest of the chain the way `rs_pipeline.launch.run_all` runs it, on the same instance.
    instance = dg.DagsterInstance.from_config(str(server.home))
    assert materialize_scorers(server.config, [BATCH], instance).success
    assert materialize_evaluation(server.config, instance).success

    # Each partitions definition's keys on a partitioned asset's Partitions tab.
    for asset, dims in PARTITIONS.items():
        if not dims:
            continue
        keys = {d: instance.get_dynamic_partitions(name) for d, name in dims.items()}
        assert all(keys.values()), (asset, keys)
        browser.get(f"{server.url}/assets/{asset}?view=partitions")
        _wait_for(
            lambda k=keys: all(any(key in _body(browser) for key in ks) for ks in k.values()),
            f"{asset}'s partition keys {keys}",
        )
    browser.save_screenshot(str(shots / "03_pair_scores_partitions.png"))  # the last one

    # The report: its headline table and its plot (a data: URL image) in the metadata.
    selections = instance.get_dynamic_partitions("selection")
    browser.get(server.url + "/assets/evaluation_report")
    _wait_for(lambda: "headline" in _body(browser), "the report's metadata")
    _wait_for(lambda: any(s in _body(browser) for s in selections), "the headline table's rows")
    browser.save_screenshot(str(shots / "04_evaluation_report.png"))
    # A long markdown value (the plot's data: URL) shows as "[Show Markdown]": open it.
    show = (
        "//*[normalize-space(text())='plot']/ancestor::tr[1]"
        "//*[contains(text(), 'Show Markdown')]"
    )
    link = _wait_for(lambda: browser.find_elements(By.XPATH, show), "the plot's [Show Markdown]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", link[0])
    link[0].click()
    images = _wait_for(
        lambda: [
            img for img in browser.find_elements(By.TAG_NAME, "img")
            if (img.get_attribute("src") or "").startswith("data:image/png;base64,")
        ],
        "the accuracy plot <img>",
    )  # fmt: skip
    assert browser.execute_script("return arguments[0].naturalWidth", images[0]) > 0
    time.sleep(0.5)  # the dialog fades in
    browser.save_screenshot(str(shots / "05_evaluation_report_plot.png"))
    print(f"UI test took {time.monotonic() - started:.0f} s after the webserver was up")
