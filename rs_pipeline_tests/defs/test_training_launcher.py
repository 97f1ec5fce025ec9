"""The training launcher: the pod PipesK8sClient would submit, the torchrun command, config."""

from __future__ import annotations

import json
import sys

import pytest
from dagster_k8s.pipes import build_pod_body

from rs_pipeline.core.config import ConfigError, TrainingConfig, config_from_dict
from rs_pipeline.defs.gpu import GPU_OP_TAGS
from rs_pipeline.defs.scoring.assets import MODEL_CHECK
from rs_pipeline.defs.training import (
    local_command,
    outcome_result,
    training_pod_spec,
)
from rs_pipeline.jobs.metadata import SCORE_MODEL_CHECK, CheckOutcome, Meta, Outcome
from rs_pipeline.jobs.spec import ProbeSpec, TrainJob, read_job

K8S = TrainingConfig(launcher="k8s", nproc_per_node=8, image="registry.example/rs-pipeline:1.2")
JOB = TrainJob(kind="score_model", config={"preset": "tiny"}, partition_key="clip-head-abc",
               run_id="r1", store_root="s3://bucket/rs")  # fmt: skip


def _pod():
    """The pod PipesK8sClient.run submits for our base pod spec (Pipes env included), as a
    dict of the Kubernetes client's V1Pod (so every key of the spec is a real pod field)."""
    env = {"DAGSTER_PIPES_CONTEXT": "ctx", "DAGSTER_PIPES_MESSAGES": "msg"}
    return build_pod_body(pod_name="dagster-r1-score-model", image=None, command=None,
                          env_vars=env, base_pod_meta=None,
                          base_pod_spec=training_pod_spec(K8S, JOB)).to_dict()  # fmt: skip


def test_the_training_pod_runs_torchrun_over_the_job_in_the_image():
    (container,) = _pod()["spec"]["containers"]
    assert container["image"] == "registry.example/rs-pipeline:1.2"
    command = container["command"]
    assert command[:5] == [
        "torchrun", "--standalone", "--nproc_per_node=8", "-m", "rs_pipeline.jobs.train"
    ]  # fmt: skip
    assert read_job(command[-1]) == JOB
    assert {e["name"]: e["value"] for e in container["env"]}["DAGSTER_PIPES_CONTEXT"] == "ctx"


def test_the_training_pod_requests_its_gpus_on_the_gpu_pool():
    pod = _pod()["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == "8" == resources["limits"]["nvidia.com/gpu"]
    assert resources["requests"]["cpu"] == "32" and resources["requests"]["memory"] == "256Gi"
    pool = GPU_OP_TAGS["dagster-k8s/config"]["pod_spec_config"]
    assert pod["node_selector"] == pool["node_selector"]
    set_fields = [{k: v for k, v in t.items() if v is not None} for t in pod["tolerations"]]
    assert set_fields == pool["tolerations"]
    assert pod["restart_policy"] == "Never"
    assert any(v["name"] == "dshm" for v in pod["volumes"])


def test_the_local_launch_is_this_interpreters_torchrun():
    assert local_command(2, "/tmp/job.json") == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "rs_pipeline.jobs.train", "/tmp/job.json",
    ]  # fmt: skip


def test_training_runs_in_process_by_default_and_k8s_needs_an_image():
    assert config_from_dict({"preset": "tiny"}).training.launcher == "inprocess"
    with pytest.raises(ConfigError, match="training.image"):
        config_from_dict({"preset": "tiny", "training": {"launcher": "k8s"}})


def test_a_job_survives_its_json_round_trip():
    probe = TrainJob(kind="probe", probe=ProbeSpec(trainer="clip", out="/tmp/x", stop_at=2))
    assert TrainJob.from_json(probe.to_json()) == probe
    assert TrainJob.from_json(json.dumps(json.loads(JOB.to_json()))) == JOB
    with pytest.raises(ValueError, match="job kind"):
        TrainJob.from_json('{"kind": "nope"}')


def test_outcomes_become_the_same_materialization_in_process():
    assert MODEL_CHECK.name == SCORE_MODEL_CHECK
    outcome = Outcome(
        {"model": Meta("/m", "path"), "seeds": Meta([0, 1]), "loss": Meta({"0": 1.0}, "json")},
        data_version="abc",
        checks=(CheckOutcome(SCORE_MODEL_CHECK, passed=True, metadata={"required": 0.5}),),
    )
    result = outcome_result(outcome)
    assert result.metadata["model"].path == "/m" and result.metadata["loss"].data == {"0": 1.0}
    assert result.data_version.value == "abc"
    (check,) = result.check_results
    assert check.passed and check.severity.value == "WARN"


def test_rl_checkpoints_metadata_names_scorer_seeds_and_rewards():
    from types import SimpleNamespace as Row

    from rs_pipeline.defs.training import outcome_result
    from rs_pipeline.jobs.metadata import vlm_rl_checkpoints_outcome

    runs = [
        Row(seed=0, reused=False, final_reward=0.1, url="rl/0", sft_url="sft/0"),
        Row(seed=1, reused=True, final_reward=0.3, url="rl/1", sft_url="sft/1"),
    ]
    rep = Row(name="v@60+rl", prompts=4, images=3, steps=2, scorer_version="v", scorer_url=None,
              results=[Row(metric="vqa_all", value=0.5), Row(metric="vqa_all", value=0.7)],
              runs=runs, digest="0123456789abcdef-rest")  # fmt: skip
    result = outcome_result(vlm_rl_checkpoints_outcome(rep))
    md = result.metadata
    assert md["scorer_url"] == "in-process" and md["reused_seeds"] == [1]
    assert md["final_reward"].value == {"0": 0.1, "1": 0.3}
    assert md["mean_vqa_all"] == pytest.approx(0.6)
    assert result.data_version.value == "0123456789abcdef"
