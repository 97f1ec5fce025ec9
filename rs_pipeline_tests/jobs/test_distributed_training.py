"""Every trainer under `torchrun --nproc_per_node 2` (gloo, CPU) through PipesSubprocessClient
trains the same weights as one process with the same global batch and seed, and a run
stopped at 2 processes resumes at 1."""

import json
import os

import dagster as dg
import pytest
import torch
from safetensors.torch import load_file

from rs_pipeline.core.config import TrainingConfig
from rs_pipeline.defs.training import TrainingLauncher
from rs_pipeline.jobs.probe import RESULT, WEIGHTS, run_probe
from rs_pipeline.jobs.spec import ProbeSpec, TrainJob

pytestmark = pytest.mark.slow

STEPS = {"score": 3, "clip": 4, "sft": 3}  # score: per stage (head, vision)
TORCHRUN_2 = TrainingConfig(launcher="torchrun", nproc_per_node=2)
# AdamW normalises each gradient by its running RMS, so a parameter whose true gradient is ~0
# (an attention key bias) turns float-rounding noise into steps of up to lr (1e-3): weights
# agree to a tenth of one step, losses to float precision.
ATOL, RTOL, LOSS_RTOL = 1e-4, 1e-4, 1e-5


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # torchrun children inherit it: two ranks on a shared 2-core machine do not oversubscribe
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    if before is None:
        os.environ.pop("OMP_NUM_THREADS")
    else:
        os.environ["OMP_NUM_THREADS"] = before


def _spec(trainer: str, out, **kw) -> ProbeSpec:
    return ProbeSpec(trainer=trainer, out=str(out), steps=STEPS[trainer], batch_size=8, **kw)


def _launch(spec: ProbeSpec, training: TrainingConfig = TORCHRUN_2):
    """Materialize an asset whose body is the Pipes launch of the probe job: (its
    materialization's metadata, the run's log lines)."""

    @dg.asset(name=f"probe_{spec.trainer}")
    def probe(context: dg.AssetExecutionContext, training_launcher: TrainingLauncher):
        return training_launcher.run_job(context, TrainJob(kind="probe", probe=spec), training)

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [probe], resources={"training_launcher": TrainingLauncher()}, instance=instance
        )
        assert result.success
        lines = [r.user_message for r in instance.all_logs(result.run_id)]
    (mat,) = result.get_asset_materialization_events()
    return mat.materialization.metadata, lines


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One-process runs of each trainer, trained once for the module."""
    cache: dict[str, tuple] = {}

    def get(trainer: str):
        if trainer not in cache:
            out = tmp_path_factory.mktemp(f"single-{trainer}")
            record = run_probe(_spec(trainer, out))
            cache[trainer] = (load_file(str(out / WEIGHTS)), record["losses"])
        return cache[trainer]

    return get


def _comparable(name: str, x: torch.Tensor) -> torch.Tensor:
    """The weights that carry a gradient: an attention's key bias shifts every logit of a
    query alike, softmax ignores it, its true gradient is 0 and AdamW turns the rounding noise
    in it into steps of ~lr that differ with the summation order. open_clip keeps it as the
    middle third of in_proj_bias (Qwen2's k_proj.bias is rotated per position: it learns)."""
    if name.endswith("attn.in_proj_bias"):
        q, _, v = x.chunk(3)
        return torch.cat([q, v])
    return x


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name, x in a.items():
        torch.testing.assert_close(
            _comparable(name, b[name]), _comparable(name, x), atol=ATOL, rtol=RTOL, msg=name
        )


@pytest.mark.parametrize("trainer", ["score", "clip", "sft"])
def test_two_processes_train_the_weights_of_one(trainer, single, tmp_path):
    meta, lines = _launch(_spec(trainer, tmp_path))
    assert meta["world_size"].value == 2 and meta["trainer"].value == trainer
    weights, losses = single(trainer)
    _assert_same_weights(weights, load_file(str(tmp_path / WEIGHTS)))
    two = json.loads((tmp_path / RESULT).read_text())["losses"]
    assert two == pytest.approx(losses, rel=LOSS_RTOL)
    assert meta["losses"].value == pytest.approx(losses, rel=LOSS_RTOL)
    if trainer == "score":  # rank 0's log lines arrive through Pipes (progress included)
        assert any("score model steps 6/6" in line for line in lines)


@pytest.mark.parametrize("trainer", ["clip", "sft"])  # the score model: same Snapshots
def test_a_run_stopped_at_two_processes_resumes_at_one(trainer, single, tmp_path):
    meta, _ = _launch(_spec(trainer, tmp_path, snapshot_every=2, stop_at=2))
    assert "stopped after the snapshot of step 2" in meta["stopped"].value
    assert not (tmp_path / WEIGHTS).exists()
    messages: list[str] = []
    record = run_probe(_spec(trainer, tmp_path, snapshot_every=2), messages.append)
    assert any("resumed at step 2/" in m for m in messages)
    weights, losses = single(trainer)
    _assert_same_weights(weights, load_file(str(tmp_path / WEIGHTS)))
    assert record["losses"] == pytest.approx(losses, rel=LOSS_RTOL)
