"""Reading a reviewer's verdict and routing its points to the jobs it reviewed."""

from __future__ import annotations

import pytest

from runner.review import APPROVED, CHANGES_REQUESTED, parse_review, route


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("APPROVED\n", APPROVED),
        ("## Verdict: **changes requested**\n\n1. Fix it.\n", CHANGES_REQUESTED),
        ("**Status:** APPROVED\n", APPROVED),
        # Prose before the verdict is not a verdict.
        (
            "# Review\n\nThe parser I approved in round 1 regressed.\n\nCHANGES_REQUESTED\n1. Fix.\n",
            CHANGES_REQUESTED,
        ),
        ("# Review\nNothing can be APPROVED yet. Verdict below.\n\nCHANGES REQUESTED\n", CHANGES_REQUESTED),
        ("# Review\nAll good.\n\nAPPROVED\n", APPROVED),
        ("# Review\nI approved of the naming.\n", None),
    ],
)
def test_the_verdict_is_the_first_lines_else_a_capitalised_one(text: str, verdict: str | None) -> None:
    assert parse_review(text).verdict == verdict


def test_points_keep_their_wrapped_lines() -> None:
    review = parse_review(
        "CHANGES_REQUESTED\n\n1. [Task 2.0] Add a test\n   for the empty input.\n2) Rename x.\n"
    )
    assert review.points == ["[Task 2.0] Add a test for the empty input.", "Rename x."]


def test_points_go_to_the_groups_they_name_with_the_general_ones() -> None:
    groups = {
        "s:implement:1.0": {"1.0", "1.1"},
        "s:implement:2.0": {"2.0", "2.1"},
        "s:implement:3.0": {"3.0"},
    }
    routed = route(["[Task 2.1] Handle errors.", "Task 3 lacks docs.", "Use logging, not print."], groups)
    assert routed == {
        "s:implement:2.0": ["[Task 2.1] Handle errors.", "Use logging, not print."],
        "s:implement:3.0": ["Task 3 lacks docs.", "Use logging, not print."],
    }
    assert route(["Use logging."], groups) == {g: ["Use logging."] for g in groups}
