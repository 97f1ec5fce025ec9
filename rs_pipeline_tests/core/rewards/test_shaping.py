import math

import pytest

from rs_pipeline.core.rewards.shaping import (
    answer_text,
    box_iou,
    em_accuracy,
    format_reward,
    iou_accuracy,
    open_ended_accuracy,
    parse_boxes,
    shape,
    shape_open_ended,
    shape_rule,
)

KEYS = {"overall", "format", "accuracy"}


def reply(answer: str, think: str = "look at the tile") -> str:
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (reply("two tanks"), 1.0),
        ("<think>line one\nline two</think><answer>a\nb</answer>", 1.0),  # DOTALL
        ("<answer>two tanks</answer>", 0.0),  # no reasoning
        ("<think>x</think>", 0.0),  # no answer
        (reply("two tanks") + " and more", 0.0),  # full match: nothing after </answer>
        ("Sure! " + reply("two tanks"), 0.0),  # nor before <think>
        ("<answer>a</answer><think>x</think>", 0.0),  # wrong order
        ("two tanks", 0.0),
    ],
)
def test_format_reward_needs_the_whole_reply_to_be_think_then_answer(text, expected):
    assert format_reward(text) == expected


def test_answer_text_takes_the_last_answer_after_the_reasoning_even_across_lines():
    assert answer_text(reply("storage\ntanks ")) == "storage\ntanks"
    quoted = "<think>maybe <answer>one</answer>?</think><answer>two</answer>"
    assert answer_text(quoted) == "two"
    assert answer_text("  no tags  ") == "no tags"


def test_open_ended_accuracy_rewards_only_outscoring_the_reference():
    assert open_ended_accuracy(6.0, 1.0) == pytest.approx(1 - math.exp(-1.0))
    assert open_ended_accuracy(1.0, 1.0) == 0.0
    assert open_ended_accuracy(0.5, 1.0) == 0.0
    assert open_ended_accuracy(float("nan"), 1.0) == 0.0


@pytest.mark.parametrize(
    ("answer", "truth", "expected"),
    [
        ("Three.", "three", 1.0),
        ("Storage Tank", "storagetank", 1.0),
        ("storage\ntank", "Storage Tank", 1.0),  # any whitespace, not only spaces
        ("3.5", "3.5", 1.0),
        ("3.5", "3.7", 0.0),  # dots dropped, not cut at: extract_answer would call these equal
        ("tank", "storage tanks", 0.0),  # exact, unlike the lenient VQA substring rule
        ("", "", 0.0),  # an empty answer is never right
    ],
)
def test_em_accuracy_compares_normalised_answer_and_truth_exactly(answer, truth, expected):
    assert em_accuracy(reply(answer), truth) == expected


def test_parse_boxes_reads_qwen_pairs_before_bracket_lists():
    assert parse_boxes("<|box_start|>(1,2),(3.5,4)<|box_end|>") == [(1.0, 2.0, 3.5, 4.0)]
    assert parse_boxes("at [1, 2, 3, 4] and [5,6,7,8]") == [(1, 2, 3, 4), (5, 6, 7, 8)]
    assert parse_boxes("nowhere") == []


def test_box_iou_matches_normalised_and_grid_boxes_and_ignores_disjoint_ones():
    assert box_iou((0, 0, 100, 100), (0, 0, 100, 50)) == pytest.approx(0.5)
    assert box_iou((0.01, 0.01, 0.05, 0.05), (10, 10, 50, 50)) == pytest.approx(1.0)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou((10, 10, 0, 0), (0, 0, 10, 10)) == 0.0  # inverted: degenerate


@pytest.mark.parametrize(
    ("height", "expected"),  # prediction [0, 0, 100, height] against [0, 0, 100, 100]: IoU = h/100
    [(100, 1.0), (85, 1.0), (75, 0.7), (65, 0.6), (55, 0.5), (50, 0.0), (30, 0.0)],
)
def test_iou_accuracy_grades_one_box_by_the_papers_thresholds(height, expected):
    predict = reply(f"[0, 0, 100, {height}]")
    assert iou_accuracy(predict, "[0, 0, 100, 100]") == pytest.approx(expected)


def test_iou_accuracy_reads_qwen_box_answers_the_official_client_scored_zero():
    truth = "<|box_start|>(10,10),(50,50)<|box_end|>"
    assert iou_accuracy(reply("<|box_start|>(10,10),(50,50)<|box_end|>"), truth) == 1.0


def test_iou_accuracy_averages_boxes_and_stays_within_one():
    truth = "[0, 0, 10, 10] [20, 20, 30, 30]"
    assert iou_accuracy(reply("[0, 0, 10, 10] [20, 20, 30, 30]"), truth) == 1.0
    assert iou_accuracy(reply("[0, 0, 10, 10] [50, 50, 60, 60]"), truth) == 0.5
    assert iou_accuracy(reply("[0, 0, 10, 10]"), truth) == 0.0  # counts differ


def test_iou_accuracy_refuses_a_ground_truth_without_a_box():
    with pytest.raises(ValueError, match=r"no box in ground truth.*reward_type"):
        iou_accuracy(reply("[0, 0, 1, 1]"), "the left one")


@pytest.mark.parametrize(
    ("predict", "truth", "reward_type", "expected"),
    [
        (reply("three"), "three", "em", {"overall": 1.0, "format": 1.0, "accuracy": 1.0}),
        (reply("four"), "three", "em", {"overall": 0.3, "format": 1.0, "accuracy": 0.0}),
        ("three", "three", "em", {"overall": 0.0, "format": 0.0, "accuracy": 0.0}),  # the gate
        (
            reply("[0, 0, 9, 9]"),
            "[0,0,9,9]",
            "iou",
            {"overall": 1.0, "format": 1.0, "accuracy": 1.0},
        ),
        ("[0, 0, 9, 9]", "[0,0,9,9]", "iou", {"overall": 0.0, "format": 0.0, "accuracy": 0.0}),
    ],
)
def test_shape_rule_returns_the_three_keys_on_every_branch(predict, truth, reward_type, expected):
    got = shape_rule(
        predict=predict, ground_truth=truth, reward_type=reward_type, format_weight=0.3
    )
    assert got.keys() == KEYS
    assert got == pytest.approx(expected)


def test_shape_open_ended_returns_the_three_keys_with_and_without_scores():
    scored = shape_open_ended(format_score=1.0, scores=(6.0, 1.0), format_weight=0.3)
    assert scored == pytest.approx(
        {"overall": 0.3 + 0.7 * (1 - math.exp(-1.0)), "format": 1.0, "accuracy": 1 - math.exp(-1)}
    )
    for record in (
        shape_open_ended(format_score=1.0, scores=None, format_weight=0.3),
        shape_open_ended(format_score=0.0, scores=(6.0, 1.0), format_weight=0.3),
    ):
        assert record.keys() == KEYS and record["accuracy"] == 0.0


def test_shape_refuses_a_format_weight_outside_zero_to_one():
    with pytest.raises(ValueError, match="format_weight"):
        shape(format_score=1.0, accuracy=1.0, format_weight=1.5)


def test_shape_rule_names_the_valid_reward_types():
    with pytest.raises(ValueError, match="open_ended"):
        shape_rule(predict=reply("a"), ground_truth="a", reward_type="math", format_weight=0.3)
