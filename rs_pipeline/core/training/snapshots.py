"""Resumable training state in safetensors: weights, AdamW moments, RNG and the loss history.

A snapshot belongs to one plan (its `key`); a snapshot of a different plan is ignored rather
than resumed, so changing steps or learning rate never continues a stale run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

_OPT = "optimizer."  # optimizer tensors are stored as `optimizer.<param index>.<name>`


@dataclass
class Snapshots:
    """One folder holding the latest snapshot of one training run."""

    folder: Path
    key: str  # identifies the plan + data; a mismatch means start afresh

    @property
    def _tensors(self) -> Path:
        return self.folder / "snapshot.safetensors"

    @property
    def _meta(self) -> Path:
        return self.folder / "snapshot.json"

    def save(self, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer,
             losses: list[float]) -> None:  # fmt: skip
        """Write atomically (temp file + rename): a crash mid-write keeps the previous one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()
        }
        scalars: dict[str, dict[str, float]] = {}
        for idx, state in opt.state_dict()["state"].items():
            for name, value in state.items():
                if torch.is_tensor(value) and value.dim() > 0:
                    tensors[f"{_OPT}{idx}.{name}"] = value.detach().cpu().contiguous()
                else:
                    scalars.setdefault(str(idx), {})[name] = float(value)
        tensors["rng.torch"] = torch.get_rng_state()
        tmp = self._tensors.with_suffix(".tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, self._tensors)
        meta = {"key": self.key, "step": step, "losses": losses, "scalars": scalars}
        self._meta.with_suffix(".tmp").write_text(json.dumps(meta))
        os.replace(self._meta.with_suffix(".tmp"), self._meta)

    def restore(
        self, model: torch.nn.Module, opt: torch.optim.Optimizer
    ) -> tuple[int, list[float]]:
        """Load the snapshot into `model` and `opt`; (steps done, losses), or (0, []) if none."""
        if not (self._meta.is_file() and self._tensors.is_file()):
            return 0, []
        meta = json.loads(self._meta.read_text())
        if meta.get("key") != self.key:
            return 0, []
        tensors = load_file(str(self._tensors))
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith(_OPT):
                idx, name = k[len(_OPT) :].split(".", 1)
                state.setdefault(int(idx), {})[name] = v
        for idx, scalars in meta["scalars"].items():
            for name, value in scalars.items():
                state.setdefault(int(idx), {})[name] = torch.tensor(value)
        saved = opt.state_dict()
        opt.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
        return int(meta["step"]), list(meta["losses"])

    def clear(self) -> None:
        """Remove the snapshot once the final checkpoint is safely written."""
        for path in (self._tensors, self._meta):
            path.unlink(missing_ok=True)
