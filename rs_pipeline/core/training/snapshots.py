"""Resumable training state in safetensors: weights, AdamW moments, RNG and progress.

The one save/resume mechanism of every trainer (CLIP fine-tuning, score models). A snapshot
belongs to one plan (its `key`): a snapshot of a different plan is ignored rather than
resumed, so changing steps or learning rate never continues a stale run. `progress` is the
trainer's own JSON record (step, losses, stage, best accuracy ...).

A snapshot is global: under `torchrun` every rank holds the same weights and moments, rank 0
alone writes them, and any world size resumes them (the data order is the global batch order,
independent of the ranks), so a run stopped at 2 processes continues at 1 or 4.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from rs_pipeline.core.training import distributed

_OPT = "optimizer."  # optimizer tensors are stored as `optimizer.<param index>.<name>`
_MODEL = "model."


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    """AdamW state as (tensors by name, 0-dim scalars by param index)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, float]] = {}
    for idx, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"{_OPT}{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = float(value)
    return tensors, scalars


def _rng_tensors() -> dict[str, torch.Tensor]:
    # dropout and sampling draws: a resumed run repeats them exactly
    rng = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["rng.cuda"] = torch.cuda.get_rng_state()
    return rng


@dataclass
class Snapshots:
    """One folder holding the latest snapshot of one training run."""

    folder: Path
    key: str = ""  # identifies the plan + data; a mismatch means start afresh

    @property
    def _tensors(self) -> Path:
        return Path(self.folder) / "snapshot.safetensors"

    @property
    def _meta(self) -> Path:
        return Path(self.folder) / "snapshot.json"

    def save(
        self, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, progress: dict
    ) -> None:
        """Write both files atomically (temp file + rename); a shared token ties them, so a
        crash between the two renames is read as no snapshot, never as a mixed one. Every rank
        calls it; only rank 0 writes (the state is the same on all)."""
        if not distributed.world().is_main:
            return
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        tensors = {
            f"{_MODEL}{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()
        }
        opt_tensors, scalars = _optimizer_tensors(optimizer)
        tensors |= opt_tensors | _rng_tensors()
        token = uuid.uuid4().hex
        tmp = self._tensors.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata={"token": token})
        os.replace(tmp, self._tensors)
        meta = {"key": self.key, "token": token, "progress": progress, "scalars": scalars}
        self._meta.with_suffix(".tmp").write_text(json.dumps(meta))
        os.replace(self._meta.with_suffix(".tmp"), self._meta)

    def _meta_if_valid(self) -> dict[str, Any] | None:
        if not (self._meta.is_file() and self._tensors.is_file()):
            return None
        meta = json.loads(self._meta.read_text())
        if meta.get("key") != self.key:
            return None
        with safe_open(str(self._tensors), "pt") as fh:
            if (fh.metadata() or {}).get("token") != meta.get("token"):
                return None
        return meta

    def progress(self) -> dict | None:
        """The saved progress record, or None when there is no usable snapshot of this plan."""
        meta = self._meta_if_valid()
        return None if meta is None else meta["progress"]

    def restore_model(self, model: torch.nn.Module) -> None:
        """Load the snapshot's weights into `model` and its RNG state into torch."""
        tensors = load_file(str(self._tensors))
        n = len(_MODEL)
        model.load_state_dict({k[n:]: v for k, v in tensors.items() if k.startswith(_MODEL)})
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])

    def restore_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Load the saved moments into `optimizer` (built over the same parameters)."""
        meta = self._meta_if_valid()
        if meta is None:
            raise FileNotFoundError(f"no snapshot of plan {self.key!r} in {self.folder}")
        state: dict[int, dict] = {}
        for k, v in load_file(str(self._tensors)).items():
            if k.startswith(_OPT):
                idx, name = k[len(_OPT) :].split(".", 1)
                state.setdefault(int(idx), {})[name] = v
        for idx, scalars in meta["scalars"].items():
            for name, value in scalars.items():
                state.setdefault(int(idx), {})[name] = torch.tensor(value)
        groups = optimizer.state_dict()["param_groups"]  # lr is set per step by the schedule
        optimizer.load_state_dict({"state": state, "param_groups": groups})

    def resume(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, list]:
        """(steps done, losses so far) of a `{"step", "losses"}` snapshot of this plan, loaded
        into `model` and `optimizer`; (0, []) when there is none."""
        progress = self.progress()
        if progress is None:
            return 0, []
        self.restore_model(model)
        self.restore_optimizer(optimizer)
        return int(progress["step"]), list(progress["losses"])

    def clear(self) -> None:
        """Remove the snapshot once the final checkpoint is safely written (rank 0)."""
        if not distributed.world().is_main:
            return
        for path in (self._tensors, self._meta):
            path.unlink(missing_ok=True)
