"""GRPO of a Qwen2-VL-family checkpoint with TRL, rewarded by the learned scorer (ScoreRS's RL).

The paper runs GRPO from the SFT checkpoint with n=5 rollouts per prompt, a KL weight of 1e-2
and an actor lr of 1e-6; the reward is the scorer's preference for the answer plus a format
term. Prompts are asked in the one chat format of `chat.py`, so the policy is sampled exactly
as it is later evaluated. The vision tower stays frozen, as in SFT.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from rs_pipeline.core.vlm.chat import user_turn
from rs_pipeline.core.vlm.sft import freeze_vision
from rs_pipeline.core.vlm.weights import is_adapter_model

# Qwen2-VL's vision special tokens (the tiny model's too, core/models/qwen2vl.py).
VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
REF_ADAPTER = "ref"  # the adapter GRPOTrainer copies the start into, as its KL reference
_TRL_MISSING = (
    "GRPO needs trl and datasets: pip install trl datasets (or set vlm.rl.enabled: false)"
)


@dataclass(frozen=True)
class GRPOPlan:
    """Steps, rollouts and sampling of one GRPO run.

    `batch_size` counts prompts per step: each step samples `batch_size * num_generations`
    completions, so every group of rollouts of one prompt sits in one batch (TRL's rule).
    """

    steps: int = 20
    num_generations: int = 5  # the paper's rollout n
    beta: float = 1e-2  # KL to the starting checkpoint (the paper's 1e-2)
    lr: float = 1e-6  # the paper's actor lr
    batch_size: int = 1
    max_completion_length: int = 32
    temperature: float = 1.0
    seed: int = 0


def rl_dataset(examples: Sequence[tuple[Image.Image, str, str]]):
    """A `datasets.Dataset` as TRL's GRPOTrainer reads it for a VLM, plus the reward's columns.

    `prompt` is the conversational user turn with an image placeholder and `image` the one
    image TRL fills it with. The image must not sit inside the prompt's content: Arrow gives
    every content part the union of keys, so each text part would carry `image: None`, and
    the chat template, which tests `'image' in content`, would render it as an image.
    """
    try:
        from datasets import Dataset
    except ImportError as err:
        raise ImportError(_TRL_MISSING) from err
    if not examples:
        raise ValueError("GRPO needs at least one (image, question, answer) example, got none")
    return Dataset.from_dict(
        {
            "prompt": [user_turn(q) for _, q, _ in examples],
            "image": [img.convert("RGB") for img, _, _ in examples],
            "problem": [q for _, q, _ in examples],
            "ground_truth": [a for _, _, a in examples],
        }
    )


def make_trainable(model: torch.nn.Module) -> torch.nn.Module:
    """LoRA adapters (a loaded adapter checkpoint comes back frozen) or the whole language
    model learn; the vision tower never does. Returns `model`."""
    if is_adapter_model(model):
        # Only requires_grad: the adapter config keeps its inference_mode, which TRL's `ref`
        # copy of it inherits, so that copy stays frozen.
        for name, param in model.named_parameters():
            param.requires_grad_("lora_" in name)
        return model
    model.requires_grad_(True)
    return freeze_vision(model)


def pin_reference(model: torch.nn.Module, folder: Path) -> None:
    """Write the starting weights to `folder` and point the model's config there.

    TRL builds the KL reference of a full (non-adapter) model by loading
    `model.config._name_or_path` from disk or a hub. A model built in memory (the tiny one)
    or loaded from a temporary folder has no such path, so the reference is pinned to a
    local copy of the policy as it starts. An adapter model needs none: TRL copies the
    adapter into a frozen `ref` adapter instead.
    """
    if is_adapter_model(model):
        return
    model.save_pretrained(folder)
    model.config._name_or_path = str(folder)


def vision_token_ids(processor) -> list[int]:
    """Ids of the image/video placeholder and vision start/end tokens the tokenizer has.

    A rollout must never sample one: TRL scores prompt + completion in one forward pass, and
    Qwen2-VL counts every `<|image_pad|>` there as an image slot, so a sampled one fails with
    "Image features and image tokens do not match". The tiny model samples them readily.
    """
    tok = processor.tokenizer
    ids = [tok.convert_tokens_to_ids(t) for t in VISION_TOKENS if t in tok.get_vocab()]
    return sorted({i for i in ids if i is not None and i != tok.unk_token_id})


def grpo_config(
    plan: GRPOPlan, *, output_dir: str | Path, device: str, suppress: Sequence[int] = ()
):
    """TRL's GRPOConfig of `plan`: nothing pushed, reported or checkpointed; a log per step.

    `suppress`: token ids rollouts never sample (`vision_token_ids`).
    """
    try:
        from trl import GRPOConfig
    except ImportError as err:
        raise ImportError(_TRL_MISSING) from err
    cuda = device.startswith("cuda")
    return GRPOConfig(
        output_dir=str(output_dir),
        max_steps=plan.steps,
        learning_rate=plan.lr,
        lr_scheduler_type="constant",  # a few steps: no schedule to speak of
        warmup_steps=0,
        per_device_train_batch_size=plan.batch_size * plan.num_generations,
        gradient_accumulation_steps=1,
        num_generations=plan.num_generations,
        max_completion_length=plan.max_completion_length,
        temperature=plan.temperature,
        beta=plan.beta,
        seed=plan.seed,
        data_seed=plan.seed,
        use_cpu=device == "cpu",
        bf16=cuda,  # GRPOConfig defaults to bf16, which a CPU run must not take
        # TRL turns checkpointing on by default; transformers 5 names it activation_*
        activation_checkpointing=False,
        generation_kwargs={"suppress_tokens": list(suppress)} if suppress else None,
        disable_dropout=True,  # policy and reference log-probs of one input must agree
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        report_to=[],
        push_to_hub=False,
        dataloader_num_workers=0,
        remove_unused_columns=False,  # the reward reads image, problem and ground_truth
    )


def _log_callback(log: Callable[[str], None]):
    from transformers import TrainerCallback

    class _Log(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "reward" in logs:
                log(f"grpo step {state.global_step}/{state.max_steps} reward {logs['reward']:.4f}")

    return _Log()


def train_grpo(
    model: torch.nn.Module,
    processor,
    examples: Sequence[tuple[Image.Image, str, str]],
    reward_funcs: Callable | Sequence[Callable],
    plan: GRPOPlan,
    *,
    output_dir: str | Path,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Train `model` in place with GRPO on (image, question, answer) prompts; TRL's log history.

    Each reward function has TRL's signature `(prompts, completions, **columns) -> list[float]`
    and reads the `image`, `problem` and `ground_truth` columns. `output_dir` holds TRL's
    scratch files and the pinned reference; nothing in it is needed afterwards.
    """
    try:
        from trl import GRPOTrainer
    except ImportError as err:
        raise ImportError(_TRL_MISSING) from err
    if len(examples) < plan.batch_size:
        # TRL's sampler keeps only full batches of prompts: fewer would train nothing.
        raise ValueError(
            f"GRPO got {len(examples)} prompts for batches of {plan.batch_size}: set "
            f"vlm.rl.batch_size <= {len(examples)} (or select more VQA examples)"
        )
    funcs = [reward_funcs] if callable(reward_funcs) else list(reward_funcs)
    dataset = rl_dataset(examples)
    make_trainable(model)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    args = grpo_config(plan, output_dir=out, device=device, suppress=vision_token_ids(processor))
    name_or_path = model.config._name_or_path
    with tempfile.TemporaryDirectory(dir=out) as ref:
        if plan.beta:
            pin_reference(model, Path(ref))
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=funcs,
            args=args,
            train_dataset=dataset,
            processing_class=processor,
            callbacks=[_log_callback(log)] if log else None,
        )
        # Progress bars and printed log dicts would flood a Dagster step's stdout; `log` gets
        # one line per step instead, and the whole history is returned.
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    model.config._name_or_path = name_or_path  # the pinned copy is gone
    if is_adapter_model(model) and REF_ADAPTER in model.peft_config:
        model.delete_adapter(REF_ADAPTER)  # TRL's frozen copy of the start: not the checkpoint
    model.eval()
    return list(trainer.state.log_history)
