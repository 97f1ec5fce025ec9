"""GRPO with TRL on the tiny Qwen2-VL, rewarded by the real ScorerReward, and the
vlm_rl_checkpoints stage: checkpoints from SFT ones, lineage rows, `+rl` VQA rows, reuse."""

import json

import pytest
import torch
from PIL import Image

from rs_pipeline.core.config import ServingConfig
from rs_pipeline.core.evaluation.paired import paired_rows
from rs_pipeline.core.evaluation.results import EvalResult
from rs_pipeline.core.evaluation.stage import current_vqa_results, trained_on
from rs_pipeline.core.evaluation.summary import Column, TrainedOn, summarize
from rs_pipeline.core.layout import vlm_rl_dir
from rs_pipeline.core.names import parse_selection, rl_selection
from rs_pipeline.core.rewards.client import RemoteScorer, RewardClient
from rs_pipeline.core.rewards.trl import ScorerReward
from rs_pipeline.core.vlm.chat import prompt_text
from rs_pipeline.core.vlm.rl import (
    REF_ADAPTER,
    GRPOPlan,
    grpo_config,
    rl_dataset,
    train_grpo,
    vision_token_ids,
)
from rs_pipeline.core.vlm.rl_stage import rl_reward, run_vlm_rl_checkpoints, runs_rl
from rs_pipeline.core.vlm.sft import SFTPlan, apply_lora, train_sft, vision_tower
from rs_pipeline.core.vlm.stage import run_vlm_checkpoints
from rs_pipeline.core.vlm.weights import build_base
from rs_pipeline_tests.core.vlm import test_stage

selected = test_stage.selected  # the tiny-preset selections fixture, shared with SFT's tests
QUESTION = "How many ships are there?"
# The shortest reply the paper's format gate passes: the tiny model is taught it by SFT, so
# some rollouts pass the gate and some do not, and GRPO's advantages are not all zero.
REPLY = "<think></think><answer>{}</answer>"


class LengthScorer:
    """A fixed stub scorer: longer texts score higher (no weights, no randomness)."""

    def score(self, images, texts, questions=None, batch_size=None):
        return [float(len(t)) for t in texts]


def examples():
    colours = ("red", "green", "blue")
    return [(Image.new("RGB", (56, 56), c), QUESTION, str(i)) for i, c in enumerate(colours)]


@pytest.fixture(scope="module")
def formatted():
    """(state_dict, processor) of the tiny model after SFT on replies in the paper's format."""
    model, processor = build_base("tiny", seed=0)
    taught = [(image, q, REPLY.format(a)) for image, q, a in examples()]
    train_sft(model, processor, taught, SFTPlan(steps=80, batch_size=3, lr=3e-3, warmup_ratio=0))
    return {k: v.clone() for k, v in model.state_dict().items()}, processor


def formatted_model(formatted):
    state, processor = formatted
    model, _ = build_base("tiny", seed=0)
    model.load_state_dict(state)
    return model, processor


PLAN = GRPOPlan(steps=2, num_generations=4, lr=1e-3, batch_size=2, max_completion_length=32)


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_grpo_prompts_are_the_prompts_evaluation_asks():
    from trl.data_utils import prepare_multimodal_messages

    _, processor = build_base("tiny", seed=0)
    row = rl_dataset(examples())[0]
    # The image travels in its own column; inside the prompt it would turn every text part
    # into an image for the chat template (Arrow adds `image: None` to each part).
    assert all("image" not in part for part in row["prompt"][0]["content"])
    messages = prepare_multimodal_messages(row["prompt"], images=[row["image"]])
    templated = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert templated == prompt_text(processor, QUESTION)
    assert (row["problem"], row["ground_truth"]) == (QUESTION, "0")


def test_rollouts_never_sample_vision_tokens_and_nothing_leaves_the_machine(tmp_path):
    _, processor = build_base("tiny", seed=0)
    ids = vision_token_ids(processor)
    tok = processor.tokenizer
    assert tok.convert_tokens_to_ids("<|image_pad|>") in ids and len(ids) == 4
    args = grpo_config(PLAN, output_dir=tmp_path, device="cpu", suppress=ids)
    assert args.generation_kwargs == {"suppress_tokens": ids}
    assert (args.use_cpu, args.bf16, args.report_to, args.push_to_hub) == (True, False, [], False)
    assert args.per_device_train_batch_size == PLAN.batch_size * PLAN.num_generations


def test_grpo_with_fewer_prompts_than_a_batch_says_what_to_set(tmp_path):
    model, processor = build_base("tiny", seed=0)
    plan = GRPOPlan(steps=1, num_generations=2, batch_size=4)
    with pytest.raises(ValueError, match="vlm.rl.batch_size <= 3"):
        reward = ScorerReward(scorer=LengthScorer())
        train_grpo(model, processor, examples(), reward, plan, output_dir=tmp_path)


def test_grpo_with_the_scorer_reward_moves_the_language_model_not_the_vision_tower(
    formatted, tmp_path
):
    model, processor = formatted_model(formatted)
    before = snapshot(model)
    reward = ScorerReward(scorer=LengthScorer())
    history = train_grpo(model, processor, examples(), reward, PLAN, output_dir=tmp_path)
    steps = [h for h in history if "reward" in h]
    assert len(steps) == PLAN.steps
    assert all(f"rewards/{reward.__name__}/mean" in h for h in steps)
    assert any(h["reward_std"] > 0 for h in steps)  # some rollouts passed the format gate
    vision, _ = vision_tower(model)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and not any(n.startswith(vision + ".") for n in changed)
    assert not model.training and model.config._name_or_path == ""  # the pinned ref is gone


def test_grpo_trains_lora_adapters_against_a_frozen_copy_of_them(formatted, tmp_path):
    model, processor = formatted_model(formatted)
    model = apply_lora(model, rank=4, alpha=4, seed=0)
    # As load_vlm hands a stored adapter back: frozen, in inference mode.
    model.requires_grad_(False)
    model.peft_config["default"].inference_mode = True
    before = snapshot(model)
    reward = ScorerReward(scorer=LengthScorer())
    train_grpo(model, processor, examples(), reward, PLAN, output_dir=tmp_path)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert REF_ADAPTER not in model.peft_config  # TRL's KL copy is not part of the checkpoint


def test_rl_runs_where_the_vlm_trains_with_rl_on(selected):
    cfg, _, _, version = selected
    assert not runs_rl(cfg, f"{version}@30")  # vlm.rl is off by default
    on = with_rl(cfg)
    assert runs_rl(on, f"{version}@30") and runs_rl(on, "all@100")
    assert not runs_rl(on, f"{version}@60")


def test_the_reward_calls_the_scorer_service_when_serving_url_is_set(selected, monkeypatch):
    cfg, store, _, version = selected
    served = cfg.model_copy(
        update={"serving": ServingConfig(url="http://127.0.0.1:9/", max_texts=7)}
    )
    monkeypatch.setattr(RewardClient, "health", lambda self: {"scorer_version": version})
    reward = rl_reward(served, store, version)
    assert isinstance(reward.scorer, RemoteScorer) and reward.scorer.batch_size == 7
    monkeypatch.setattr(RewardClient, "health", lambda self: {"scorer_version": "other-1"})
    with pytest.raises(ValueError, match="serves 'other-1'"):
        rl_reward(served, store, version)
    local = rl_reward(cfg, store, version)  # the stored scorer judges a formatted reply
    replies = [[{"role": "assistant", "content": REPLY.format(a)}] for a in ("7", "no")]
    image, question, truth = examples()[0]
    columns = {"image": [image] * 2, "problem": [question] * 2, "ground_truth": [truth] * 2}
    got = local(prompts=[[]] * 2, completions=replies, **columns)
    assert len(got) == 2 and all(0.3 <= r <= 1.0 for r in got)  # the format's 0.3 at least


def with_rl(cfg, **rl):
    settings = {"enabled": True, "steps": 2, "num_generations": 2, "lr": 1e-3}
    settings |= {"max_completion_length": 6} | rl
    new_rl = cfg.vlm.rl.model_copy(update=settings)
    return cfg.model_copy(update={"vlm": cfg.vlm.model_copy(update={"rl": new_rl})})


def test_vlm_rl_checkpoints_start_from_sft_and_write_lineage_and_rl_vqa_rows(selected):
    cfg, store, lineage, version = selected
    name = f"{version}@30"
    sft = run_vlm_checkpoints(cfg, name, store, lineage, "r1")
    rl_cfg = with_rl(cfg)
    rep = run_vlm_rl_checkpoints(rl_cfg, name, store, lineage, "r1")
    assert rep.prompts > 0 and rep.scorer_version == version and rep.name == f"{name}+rl"
    (run,) = rep.runs
    assert run.sft_url == sft.runs[0].url and not run.reused
    meta = json.loads(store.fs.cat_file(store.path(vlm_rl_dir(name, 0), "rs_vlm.json")))
    assert meta["sft_checkpoint"] == sft.runs[0].url and meta["scorer_version"] == version
    assert meta["plan"]["steps"] == 2 and len(meta["rewards"]) == 2
    assert {r.selection for r in rep.results} == {f"{name}+rl"}
    assert {(r.scorer, r.percent) for r in rep.results} == {parse_selection(name)[1:]}
    ckpts = lineage.query(
        "SELECT asset, selection, url FROM vlm_checkpoints WHERE selection = ? ORDER BY asset",
        [name],
    ).to_pylist()
    assert [c["asset"] for c in ckpts] == ["vlm_checkpoints", "vlm_rl_checkpoints"]
    assert ckpts[1]["url"] == run.url
    vqa = {r.selection for r in current_vqa_results(rl_cfg, lineage)}
    assert {name, f"{name}+rl"} <= vqa
    assert f"{name}+rl" not in {r.selection for r in current_vqa_results(cfg, lineage)}
    assert TrainedOn("VLM+RL", name, (0,)) in trained_on(rl_cfg, lineage)
    assert all(t.family != "VLM+RL" for t in trained_on(cfg, lineage))
    again = run_vlm_rl_checkpoints(rl_cfg, name, store, lineage, "r2")
    assert again.runs[0].reused
    assert [r.value for r in again.results] == [r.value for r in rep.results]


def test_rl_without_an_sft_checkpoint_says_what_to_materialize(selected):
    cfg, store, lineage, version = selected
    untrained = with_rl(cfg.model_copy(update={"vlm": cfg.vlm.model_copy(update={"seeds": (5,)})}))
    with pytest.raises(FileNotFoundError, match="materialize vlm_checkpoints"):
        run_vlm_rl_checkpoints(untrained, f"{version}@30", store, lineage, "r")


def vqa(selection, seed, value):
    _, scorer, percent = parse_selection(selection)
    return EvalResult(
        selection=selection,
        scorer=scorer,
        percent=percent,
        seed=seed,
        benchmark="synthrs-vqa",
        metric="vqa_all",
        value=value,
        n_images=4,
        excluded=0,
        checkpoint="file:///c",
    )


def test_rl_rows_parse_as_their_selection_and_pair_against_all_at_100():
    assert parse_selection(rl_selection("clip-head-abc@60")) == ("clip-head-abc", "clip-head", 60)
    assert parse_selection(rl_selection("all@100")) == ("all", "all", 100.0)
    names = ("clip-head-abc@60", "clip-head-abc@60+rl", "all@100", "all@100+rl")
    rows = [vqa(s, seed, 0.1 * i + 0.01 * seed) for i, s in enumerate(names) for seed in (0, 1)]
    table = summarize(rows)
    order = table.selections
    assert order.index("clip-head-abc@60+rl") == order.index("clip-head-abc@60") + 1
    by_row = {p.selection: p for p in paired_rows(table, Column("synthrs-vqa", "vqa_all"))}
    # all@100+rl − all@100 is SFT+RL against SFT on the uncurated pool.
    assert by_row["all@100+rl"].vs_all.mean == pytest.approx(0.1)


def test_the_configs_reward_types_are_the_ones_the_reward_shapes():
    from typing import get_args

    from rs_pipeline.core.config import RLConfig
    from rs_pipeline.core.rewards.shaping import REWARD_TYPES

    assert get_args(RLConfig.model_fields["reward_type"].annotation) == REWARD_TYPES
