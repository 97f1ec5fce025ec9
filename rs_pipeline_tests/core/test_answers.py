"""The paper's answer matching: tag extraction, squashing, the lenient substring rule."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from rs_pipeline.core.answers import accuracy_by_type, extract_answer, is_correct

# (reply, reference, verdict): one row per behaviour of the rule.
VERDICTS = [
    ("yes", "yes", True),
    ("Yes.", "yes", True),  # trailing full stop cut, case folded
    ("yes", "yes.", True),  # the reference keeps its stop; "yes" is inside "yes."
    ("  YES  ", "yes", True),  # surrounding whitespace removed
    ("no", "yes", False),
    ("3", "3", True),
    ("3", "three", False),  # digits and number words are different strings
    ("three", "3", False),
    ("storage tanks", "storage tanks", True),
    ("storagetanks", "storage tanks", True),  # whitespace removed on both sides
    ("Storage Tanks", "storagetanks", True),
    ("tank", "storage tanks", True),  # a partial prediction counts: the paper's rule
    ("top", "top left", True),  # ... so a coarser position counts too
    ("top left", "top", False),  # but a longer prediction is not inside a shorter reference
    ("<think>it is wet</think>lake", "lake", True),
    ("<think>maybe forest</think><think>no, a lake</think> lake", "lake", True),  # last </think>
    ("<think>forest?</think>", "forest", False),  # nothing after the reasoning
    ("<answer>harbor</answer>", "harbor", True),
    ("The answer: <answer> Parking Lot </answer> I think.", "parking lot", True),
    ("<think>a farm</think><answer>farmland.</answer>", "farmland", True),
    ("<answer>forest</answer> <answer>lake</answer>", "lake", True),  # the last answer tag
    ("forest, with a river", "forest", True),  # cut at the first comma
    ("A forest. Also a river", "river", False),  # cut at the first full stop
    ("", "yes", False),  # empty prediction: never right, though "" is in every string
    ("   ", "yes", False),
    (".", "yes", False),  # only punctuation squashes to nothing
    ("<answer></answer>", "yes", False),
]


@pytest.mark.parametrize(("reply", "reference", "verdict"), VERDICTS)
def test_verdict_table(reply: str, reference: str, verdict: bool):
    assert is_correct(reply, reference) is verdict


def test_answer_inside_answer_tags_is_matched():
    assert extract_answer("I see water. <answer>Lake</answer> done") == "lake"


def test_text_after_last_think_is_extracted_squashed_and_cut():
    reply = "<think>two?</think><think>count again</think> Four Cars, all red."
    assert extract_answer(reply) == "fourcars"


def test_unclosed_answer_tag_runs_to_the_end():
    assert extract_answer("<answer> Top Right") == "topright"


def test_reply_without_tags_is_used_whole():
    assert extract_answer("Bottom left.") == "bottomleft"


@dataclass(frozen=True)
class _Q:
    qtype: str
    reference: str


def test_accuracy_per_type_and_overall():
    questions = [_Q("count", "2"), _Q("count", "5"), _Q("presence", "yes"), _Q("class", "lake")]
    replies = ["2", "three", "Yes.", "<answer>forest</answer>"]
    assert accuracy_by_type(questions, replies) == {
        "vqa_class": 0.0,
        "vqa_count": 0.5,
        "vqa_presence": 1.0,
        "vqa_all": 0.5,
    }


def test_accuracy_of_no_questions_is_empty():
    assert accuracy_by_type([], []) == {}


def test_accuracy_rejects_a_reply_count_mismatch():
    with pytest.raises(ValueError, match="one reply per question"):
        accuracy_by_type([_Q("count", "2")], ["2", "3"])
