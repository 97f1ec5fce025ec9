"""ScorerReward called exactly as trl 1.13's GRPOTrainer._calculate_rewards calls it."""

import math

import pytest
from PIL import Image

from rs_pipeline.core.rewards.trl import ScorerReward


class LengthScorer:
    """A fixed in-process scorer: a text scores its length; every call is recorded."""

    backend = "stub"

    def __init__(self) -> None:
        self.calls: list[tuple[list, list[str], list]] = []

    def score(self, images, texts, questions=None):
        self.calls.append((list(images), list(texts), list(questions or [])))
        return [float(len(t)) for t in texts]


def grpo_call(reward, *, prompts, completions, **columns):
    """GRPOTrainer's call: prompts, completions, ids, the dataset columns and its three extras."""
    metrics: dict[str, float] = {}
    rewards = reward(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1, 2, 3]] * len(completions),
        **columns,
        trainer_state=None,
        log_extra=lambda column, values: None,
        log_metric=metrics.__setitem__,
    )
    return rewards, metrics


def answer(text: str) -> str:
    return f"<think>look</think><answer>{text}</answer>"


def test_conversational_group_is_scored_in_one_call_with_the_reference_once():
    tile = Image.new("RGB", (4, 4))
    scorer = LengthScorer()
    reward = ScorerReward(scorer=scorer, format_weight=0.3)
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count?"}]}]
    replies = [answer("two storage tanks"), answer("no"), "two storage tanks"]
    rewards, metrics = grpo_call(
        reward,
        prompts=[prompt] * 3,
        completions=[[{"role": "assistant", "content": r}] for r in replies],
        image=[tile] * 3,
        ground_truth=["tanks"] * 3,
    )
    good = 1 - math.exp(-0.2 * (len("two storage tanks") - len("tanks")))
    assert rewards == pytest.approx([0.3 + 0.7 * good, 0.3, 0.0])
    assert len(scorer.calls) == 1
    images, texts, questions = scorer.calls[0]
    assert texts == ["tanks", "two storage tanks", "no"]  # the malformed reply is not scored
    assert questions == ["Count?"] * 3  # from the prompt when there is no `problem` column
    assert all(image is tile for image in images)
    assert metrics == pytest.approx(
        {"scorer_reward/format": 2 / 3, "scorer_reward/accuracy": good / 3}
    )


def test_plain_completions_read_images_solution_and_question_columns():
    first, second = Image.new("RGB", (4, 4)), Image.new("RGB", (4, 4))
    scorer = LengthScorer()
    rewards, _ = grpo_call(
        ScorerReward(scorer=scorer, format_weight=0.0),
        prompts=["p1", "p2"],
        completions=[answer("a long answer"), answer("short")],
        images=[[first], [second]],
        solution=["ref", "a longer reference"],
        question=["Q1", "Q2"],
    )
    assert rewards == pytest.approx([1 - math.exp(-0.2 * 10), 0.0])
    images, texts, questions = scorer.calls[0]
    assert texts == ["ref", "a long answer", "a longer reference", "short"]
    assert images == [first, first, second, second] and questions == ["Q1", "Q1", "Q2", "Q2"]


def test_rule_rewards_never_call_the_scorer():
    scorer = LengthScorer()
    rewards, _ = grpo_call(
        ScorerReward(scorer=scorer, reward_type="em"),
        prompts=["p", "p"],
        completions=[answer("Three"), answer("four")],
        ground_truth=["three", "three"],
    )
    assert rewards == pytest.approx([1.0, 0.3])
    assert scorer.calls == []


def test_the_reward_is_logged_under_its_name():
    reward = ScorerReward(scorer=LengthScorer(), name="scorers_rs")
    assert reward.__name__ == "scorers_rs"  # what trl's get_callable_name reads


def test_missing_columns_are_named():
    reward = ScorerReward(scorer=LengthScorer())
    with pytest.raises(ValueError, match="ground_truth"):
        grpo_call(
            reward, prompts=["p"], completions=[answer("a")], image=[Image.new("RGB", (2, 2))]
        )
    with pytest.raises(ValueError, match="`image`"):
        grpo_call(reward, prompts=["p"], completions=[answer("a")], ground_truth=["a"])
