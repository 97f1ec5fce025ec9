"""Qwen2-VL built and loaded offline: an in-process tokenizer, a tiny seeded model, local folders.

Nothing here reaches for a model hub. The tiny model is built from a config (random weights),
its tokenizer is a byte-level BPE trained in-process, and real checkpoints load only from a local
folder. The same pieces back the VLM captioner and the Qwen2-VL reward model.
"""

from __future__ import annotations

import ast
import csv
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    PreTrainedTokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)

from rs_pipeline.core.prompts import CAPTION_PROMPT
from rs_pipeline.core.vocabulary import (
    COLOURS,
    OBJECT_KINDS,
    POSITION_GRID,
    SCENE_CLASSES,
    as_words,
    noun,
)

PAD_TOKEN = "<|endoftext|>"  # also Qwen2's bos; never the end-of-turn token
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"
SYSTEM_PROMPT = "You are a helpful assistant."  # Qwen2-VL-Instruct's default system turn
SPECIAL_TOKENS: tuple[str, ...] = (
    PAD_TOKEN, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD,
)  # fmt: skip

# Qwen2-VL-Instruct's chat template: default system turn, user turns with image/video
# placeholders (the processor expands each `<|image_pad|>` to the image's token count) and text.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + SYSTEM_PROMPT + "<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Prompt texts go into the tokenizer's corpus, so the prompts it is used with encode compactly.
PROMPTS: tuple[str, ...] = (CAPTION_PROMPT, "Describe this remote sensing image.", SYSTEM_PROMPT)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4000) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on `texts`, with Qwen2-VL's special tokens and chat template."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),  # ids 0..6, never split, skipped on decode
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # any byte stays encodable
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=None,  # Qwen2 prepends nothing
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        extra_special_tokens=list(SPECIAL_TOKENS[1:]),
        chat_template=CHAT_TEMPLATE,
        padding_side="left",  # batched generation continues from the right edge
        model_max_length=32768,
    )


@dataclass(frozen=True)
class TinyQwen2VLSpec:
    """Shape of a tiny random Qwen2-VL: builds in milliseconds, runs anywhere."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 128
    vision_depth: int = 2
    vision_embed: int = 32
    vision_heads: int = 2
    min_pixels: int = 56 * 56
    max_pixels: int = 112 * 112
    seed: int = 0


def _mrope_section(head_dim: int) -> list[int]:
    """M-RoPE (temporal, height, width) split of head_dim/2 in Qwen2-VL's 16:24:24 ratio."""
    half = head_dim // 2
    t = max(half // 4, 1)
    h = (half - t) // 2
    return [t, h, half - t - h]


def tiny_qwen2vl_config(spec: TinyQwen2VLSpec, tokenizer: PreTrainedTokenizerFast) -> Qwen2VLConfig:
    """A Qwen2VLConfig of `spec`'s shape whose vocab and special-token ids match `tokenizer`."""
    if spec.hidden % spec.heads or spec.heads % spec.kv_heads:
        raise ValueError("TinyQwen2VLSpec: hidden must divide by heads, heads by kv_heads")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=4096,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": _mrope_section(spec.hidden // spec.heads),
        },
        bos_token_id=ids[PAD_TOKEN],
        eos_token_id=ids[IM_END],
        pad_token_id=ids[PAD_TOKEN],
    )
    vision = dict(
        depth=spec.vision_depth,
        embed_dim=spec.vision_embed,
        num_heads=spec.vision_heads,
        hidden_size=spec.hidden,  # the patch merger projects straight into the text width
    )
    return Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
    )


def build_processor(
    tokenizer: PreTrainedTokenizerFast, min_pixels: int = 56 * 56, max_pixels: int = 112 * 112
) -> Qwen2VLProcessor:
    """A Qwen2VLProcessor (image + video processors, tokenizer, chat template); needs no files."""
    pixels = dict(min_pixels=min_pixels, max_pixels=max_pixels)
    # Qwen2VLProcessor refuses video_processor=None, so a video processor is built too.
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels),
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_qwen2vl(
    spec: TinyQwen2VLSpec, tokenizer: PreTrainedTokenizerFast
) -> tuple[Qwen2VLForConditionalGeneration, Qwen2VLProcessor]:
    """A randomly initialised (seeded) tiny Qwen2-VL in eval mode, and its processor."""
    config = tiny_qwen2vl_config(spec, tokenizer)
    # A forked RNG: the same seed gives the same weights without moving the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = Qwen2VLForConditionalGeneration(config)
    ids = [tokenizer.convert_tokens_to_ids(t) for t in (IM_END, PAD_TOKEN)]
    # Stop at end of turn or end of text, as Qwen2-VL-Instruct's generation config does.
    model.generation_config = GenerationConfig(
        bos_token_id=ids[1], eos_token_id=ids, pad_token_id=ids[1]
    )
    return model.eval(), build_processor(tokenizer, spec.min_pixels, spec.max_pixels)


def save_pretrained_offline(model, processor, path: str | Path) -> Path:
    """Write model (safetensors), config and processor files to a local folder."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)  # transformers 5.x always writes safetensors
    processor.save_pretrained(out)
    return out


_HOW_TO = (
    "provide a local Qwen2-VL checkpoint folder holding config.json, safetensors weights "
    "(model.safetensors or model-*.safetensors with its index) and processor files "
    "(tokenizer.json or tokenizer_config.json, plus preprocessor_config.json or "
    "processor_config.json), e.g. written by save_pretrained_offline or copied from a "
    "downloaded Qwen2-VL release; nothing is fetched from a model hub"
)


def check_checkpoint_folder(path: str | Path) -> Path:
    """The folder as a Path, or FileNotFoundError naming what a checkpoint folder must hold."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {str(folder)!r}: {_HOW_TO}")
    names = {p.name for p in folder.iterdir()}
    missing = []
    if "config.json" not in names:
        missing.append("config.json")
    if not any(n.endswith(".safetensors") for n in names):
        missing.append("*.safetensors weights")
    if not names & {"tokenizer.json", "tokenizer_config.json"}:
        missing.append("tokenizer.json")
    if not names & {"preprocessor_config.json", "processor_config.json"}:
        missing.append("preprocessor_config.json")
    if missing:
        raise FileNotFoundError(f"{str(folder)!r} lacks {', '.join(missing)}: {_HOW_TO}")
    return folder


def load_qwen2vl(
    path: str | Path, device: str = "cpu", dtype: torch.dtype | str | None = None
) -> tuple[torch.nn.Module, Qwen2VLProcessor]:
    """Model (eval mode, on `device`) and processor from a local folder only; float32 default."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = check_checkpoint_folder(path)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    # Auto classes so Qwen2.5-VL and kin load too; local_files_only forbids any hub lookup.
    model = AutoModelForImageTextToText.from_pretrained(
        folder, local_files_only=True, dtype=dtype or torch.float32
    )
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    return model.to(device).eval(), processor


def default_tokenizer_corpus() -> list[str]:
    """RS-style sentences generated in-process (SynthRS classes, objects, colours, places)."""
    scenes = [as_words(c) for c in SCENE_CLASSES]
    places = [p for row in POSITION_GRID for p in row]  # row-major, as the corpus always was
    out = list(PROMPTS)
    combos = itertools.product(scenes, OBJECT_KINDS, range(1, 7))
    for i, (scene, kind, n) in enumerate(combos):
        colour, place = COLOURS[i % len(COLOURS)], places[(i // 3) % len(places)]
        one, kinds = noun(kind, 1), noun(kind, n)
        out += [
            f"This is an aerial image of a {scene} area with {n} {colour} {kinds}.",
            f"There are {n} {kinds} at the {place} of the {scene}.",
            f"A {colour} {one} is located at the {place} near the {scene}.",
            f"Many {noun(kind, 2)} and green trees are around the {scene}, seen from above.",
        ]
    return out


def caption_csv_sentences(paths: Iterable[str | Path]) -> list[str]:
    """Captions from caption CSVs whose `sentence` column is a Python-literal list of strings."""
    out: list[str] = []
    for path in paths:
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                raw = (row.get("sentence") or "").strip()
                if raw.startswith("["):
                    out += [str(s).strip() for s in ast.literal_eval(raw) if str(s).strip()]
    return out
