"""The paper's reward model: Qwen2-VL hidden states -> linear head on the last token -> softplus.

Each pair is one chat: the user turn holds the image and the question (or empty text), the
assistant turn holds the candidate and ends with `<|im_end|>`. The score is read from the hidden
state of each row's last non-pad token, found from the attention mask, so left and right padding
both work; that token is the template's newline after `<|im_end|>`, where ScoreRS's own
inference reads it too. The pad token (`<|endoftext|>`) never occurs in a chat, so candidates of
different lengths in one batch each pool their own end. Released ScoreRS checkpoints (keys
`visual.*`, `model.*`, `reward_head.weight`, saved with transformers 4.x) load onto the installed
transformers' module names, strictly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from transformers import Qwen2VLConfig, Qwen2VLModel, Qwen2VLProcessor

from rs_pipeline.core.config import ScorerSpec
from rs_pipeline.core.models.qwen2vl import (
    TinyQwen2VLSpec,
    build_processor,
    build_tiny_qwen2vl,
    check_checkpoint_folder,
    default_tokenizer_corpus,
    train_tokenizer,
)
from rs_pipeline.core.scoring.base import Stage, check_pair_lengths, score_in_batches

BACKEND = "qwen2vl_reward"
WEIGHTS_FILE, CONFIG_FILE, INDEX_FILE = (
    "model.safetensors",
    "config.json",
    "model.safetensors.index.json",
)
# Released ScoreRS prefix -> this module's prefix. transformers 5.x nests the vision tower and the
# text decoder inside Qwen2VLModel; 4.x (where ScoreRS was trained) kept them side by side.
SCORERS_PREFIXES: tuple[tuple[str, str], ...] = (
    ("visual.", "model.visual."),
    ("model.", "model.language_model."),
    ("reward_head.", "reward_head."),
)


def scorers_to_installed(key: str) -> str:
    """A released ScoreRS weight name as this scorer's parameter name (unknown names unchanged)."""
    for old, new in SCORERS_PREFIXES:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def installed_to_scorers(key: str) -> str:
    """This scorer's parameter name as the released ScoreRS checkpoint spells it."""
    for old, new in SCORERS_PREFIXES:
        if key.startswith(new):
            return old + key[len(new) :]
    return key


def chat_messages(text: str, question: str | None) -> list[dict[str, Any]]:
    """One pair as a chat: user = [image, question or ""], assistant = the candidate."""
    return [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question or ""}]},
        {"role": "assistant", "content": [{"type": "text", "text": text}]},
    ]


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position (B,) of each row's last non-pad token, whichever side the padding is on."""
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)  # (T,)
    return (positions * attention_mask.long()).amax(dim=-1)  # (B,)


def pool_last_token(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state (B, H) of each row's last non-pad token, from hidden (B, T, H)."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)  # (B,)
    return hidden[rows, last_token_index(attention_mask).to(hidden.device)]  # (B, H)


def _backbone(config: Qwen2VLConfig, dtype: torch.dtype | None, seed: int | None) -> Qwen2VLModel:
    """A Qwen2VLModel of `config`: seeded random weights, or uninitialised (seed None)."""
    from transformers.initialization import no_init_weights

    dtype = dtype or torch.float32  # a released config says bfloat16; CPU work wants float32
    if seed is None:  # weights are about to be overwritten: skip the (slow, 7B-sized) init
        with no_init_weights():
            return Qwen2VLModel._from_config(config, dtype=dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Qwen2VLModel._from_config(config, dtype=dtype)


class Qwen2VLRewardScorer(nn.Module):
    """Backend "qwen2vl_reward": Qwen2-VL + linear head on the last non-pad token, softplus."""

    backend = BACKEND

    def __init__(self, model: Qwen2VLModel, processor: Qwen2VLProcessor, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(model, Qwen2VLModel):  # accept the generation wrapper, keep its body
            model = getattr(model, "model", model)
        if not isinstance(model, Qwen2VLModel):
            raise TypeError(
                "need a Qwen2VLModel or Qwen2VLForConditionalGeneration, "
                f"got {type(model).__name__}"
            )
        self.model, self.processor, self.seed = model, processor, seed
        self.hidden = int(model.config.text_config.hidden_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)  # the head's init is seeded apart from the backbone's
            self.reward_head = nn.Linear(self.hidden, 1, bias=False)
        self.reward_head.to(next(model.parameters()).dtype)

    # -- architecture ---------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        """The JSON-able config that rebuilds this scorer (the Qwen2-VL config included)."""
        # Qwen2-VL keeps its pixel budget as size = {shortest_edge: min, longest_edge: max pixels}.
        size = self.processor.image_processor.size
        return {
            "backend": self.backend,
            "qwen2vl": self.model.config.to_dict(),
            "head": {"in_features": self.hidden, "out_features": 1, "bias": False},
            "image_pixels": {"min_pixels": size.shortest_edge, "max_pixels": size.longest_edge},
            "seed": self.seed,
        }

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        processor: Qwen2VLProcessor | None = None,
        dtype: torch.dtype | None = None,
        init: bool = True,
    ) -> Qwen2VLRewardScorer:
        """Build (seeded random, or uninitialised with init=False) from `config_dict()` output."""
        if config.get("backend", cls.backend) != cls.backend:
            raise ValueError(f"config is for backend {config['backend']!r}, not {cls.backend!r}")
        seed = int(config.get("seed", 0))
        qwen = Qwen2VLConfig.from_dict(config["qwen2vl"])
        if processor is None:  # a fresh tiny scorer: the in-process tokenizer fits its vocab
            processor = build_processor(
                train_tokenizer(default_tokenizer_corpus()), **config.get("image_pixels", {})
            )
        if len(processor.tokenizer) > qwen.text_config.vocab_size:
            raise ValueError(
                f"tokenizer has {len(processor.tokenizer)} tokens but the model only "
                f"{qwen.text_config.vocab_size}; pass the processor saved with this config"
            )
        return cls(_backbone(qwen, dtype, seed if init else None), processor, seed)

    def stage_parameters(self, stage: Stage) -> list[nn.Parameter]:
        """Head: reward_head; vision: visual tower + head; text: language model + head."""
        head = list(self.reward_head.parameters())
        if stage == "head":
            return head
        if stage == "vision":
            return list(self.model.visual.parameters()) + head
        if stage == "text":  # embeddings, decoder layers and final norm
            return list(self.model.language_model.parameters()) + head
        raise ValueError(f"unknown stage {stage!r}; use 'head', 'vision' or 'text'")

    # -- tensors --------------------------------------------------------------------------------
    def chat_texts(
        self, texts: Sequence[str], questions: Sequence[str | None] | None = None
    ) -> list[str]:
        """Each pair's full chat string (no generation prompt), via the processor's template."""
        qs = questions if questions is not None else [None] * len(texts)
        return [
            self.processor.apply_chat_template(
                chat_messages(t, q), tokenize=False, add_generation_prompt=False
            )
            for t, q in zip(texts, qs, strict=True)
        ]

    def prepare(
        self,
        images: Sequence[Image.Image],
        texts: Sequence[str],
        questions: Sequence[str | None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Processor tensors: input_ids/attention_mask/mm_token_type_ids (B, T), pixels; CPU."""
        check_pair_lengths(images, texts, questions)
        if not images:
            raise ValueError("no pairs to prepare; pass at least one image and text")
        batch = self.processor(
            text=self.chat_texts(texts, questions),
            images=[im.convert("RGB") for im in images],
            padding=True,
            return_tensors="pt",
        )
        return dict(batch)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **vision: torch.Tensor
    ) -> torch.Tensor:
        """Scores (B,), softplus-positive, differentiable."""
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **vision
        )
        pooled = pool_last_token(out.last_hidden_state, attention_mask)  # (B, H)
        return F.softplus(self.reward_head(pooled).squeeze(-1))  # (B,)

    # -- scoring --------------------------------------------------------------------------------
    def score(
        self,
        images: Sequence[Image.Image],
        texts: Sequence[str],
        questions: Sequence[str | None] | None = None,
        batch_size: int = 8,
    ) -> list[float]:
        """One float per pair, in input order, batched under inference mode and eval mode."""
        return score_in_batches(self, images, texts, questions, batch_size)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Folder with model.safetensors, config.json and the processor files (never pickle)."""
        from safetensors.torch import save_model

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.processor.save_pretrained(folder)
        save_model(self, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(self.config_dict(), indent=2))

    @classmethod
    def load(
        cls, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> Qwen2VLRewardScorer:
        """From a folder written by `save` or a released ScoreRS checkpoint; eval mode."""
        folder = check_checkpoint_folder(path)
        config = json.loads((folder / CONFIG_FILE).read_text())
        if config.get("backend") != cls.backend:  # no backend key: a transformers config
            return load_scorers_checkpoint(folder, device, dtype)
        processor = Qwen2VLProcessor.from_pretrained(folder, local_files_only=True)
        scorer = cls.from_config(config, processor, dtype, init=False)
        load_weights_strict(scorer, folder, lambda k: k, lambda k: k)
        return scorer.to(device).eval()


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a checkpoint folder: the index's shards, or the single file."""
    index = folder / INDEX_FILE
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / s for s in shards]
    if (folder / WEIGHTS_FILE).is_file():
        return [folder / WEIGHTS_FILE]
    return sorted(folder.glob("*.safetensors"))


def _few(keys: Sequence[str], n: int = 5) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_weights_strict(
    module: nn.Module,
    folder: Path,
    to_installed: Callable[[str], str],
    to_checkpoint: Callable[[str], str],
) -> None:
    """Load every tensor of `folder` into `module` under renamed keys; all must match exactly."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    files = weight_files(folder)
    names: dict[str, str] = {}  # checkpoint key -> installed key
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            names |= {k: to_installed(k) for k in fh.keys()}  # noqa: SIM118 (a file handle)
    expected = set(module.state_dict())
    unexpected = sorted(k for k, new in names.items() if new not in expected)
    missing = sorted(to_checkpoint(k) for k in expected - set(names.values()))
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {folder} does not match a Qwen2-VL reward model of its config.json: "
            f"missing {len(missing)} key(s) [{_few(missing)}], unexpected {len(unexpected)} "
            f"[{_few(unexpected)}]; provide a folder written by Qwen2VLRewardScorer.save or a "
            "ScoreRS checkpoint with visual.*, model.* and reward_head.weight tensors"
        )
    for f in files:  # shard by shard: peak memory is the model plus one shard
        module.load_state_dict({names[k]: v for k, v in load_file(str(f)).items()}, strict=False)


def load_scorers_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> Qwen2VLRewardScorer:
    """A released ScoreRS reward model from a local folder (float32 unless `dtype`); eval mode."""
    folder = check_checkpoint_folder(path)
    model_type = json.loads((folder / CONFIG_FILE).read_text()).get("model_type")
    if model_type != "qwen2_vl":
        raise ValueError(
            f"{folder}/config.json has model_type {model_type!r}; provide a ScoreRS (Qwen2-VL, "
            "model_type 'qwen2_vl') checkpoint or a folder written by Qwen2VLRewardScorer.save"
        )
    config = Qwen2VLConfig.from_pretrained(folder, local_files_only=True)
    processor = Qwen2VLProcessor.from_pretrained(folder, local_files_only=True)
    scorer = Qwen2VLRewardScorer(_backbone(config, dtype, seed=None), processor, seed=0)
    load_weights_strict(scorer, folder, scorers_to_installed, installed_to_scorers)
    return scorer.to(device).eval()


def build_reward_scorer(spec: ScorerSpec) -> Qwen2VLRewardScorer:
    """The spec's checkpoint (either layout) or a fresh tiny seeded CPU reward model."""
    if spec.checkpoint:
        return Qwen2VLRewardScorer.load(spec.checkpoint)
    tokenizer = train_tokenizer(default_tokenizer_corpus())
    model, processor = build_tiny_qwen2vl(TinyQwen2VLSpec(seed=spec.seed), tokenizer)
    return Qwen2VLRewardScorer(model, processor, seed=spec.seed).eval()
