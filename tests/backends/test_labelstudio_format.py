"""Reading Label Studio's annotation JSON (``backends/labelstudio_format.py``) and what a polled
annotation becomes (``backends/labelstudio_answers.py``): a result Label Studio would not write is
never read as a label; the answer is kept, quarantined with the reason."""

from __future__ import annotations

import pytest

from clicloop.backends.labelstudio_answers import Annotations
from clicloop.backends.labelstudio_format import annotation_label, result_problem, user_problem


def _region(value):
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": value}]


@pytest.mark.parametrize(("result", "label", "problem"), [
    (_region({"choices": ["b"]}), "b", None),
    (_region({"choices": []}), None, None),
    (None, None, None),
    (_region({"choices": "bogus"}), None, "value.choices must be a list of label strings"),  # was read as "b"
    (_region(["b"]), None, "value must be an object"),  # was an AttributeError
    (_region({"choices": [3]}), None, "value.choices must be a list of label strings"),
    ({"choices": ["b"]}, None, "must be a list of regions"),
    (["b"], None, r"result\[0\] must be an object"),
])
def test_a_result_label_studio_would_not_write_is_never_read_as_a_label(result, label, problem):
    assert annotation_label({"result": result}) == label
    found = result_problem(result)
    assert (found is None) if problem is None else (found is not None and pytest.importorskip("re").search(problem, found))


@pytest.mark.parametrize(("completed_by", "ok"), [(4, True), ({"id": 4}, True), ({"email": "a@b.c"}, True),
                                                  (None, False), ({}, False), ({"id": [1, 2]}, False), (True, False)])
def test_an_annotation_names_one_person(completed_by, ok):
    assert (user_problem(completed_by) is None) is ok


def test_a_polled_annotation_with_an_unreadable_result_is_kept_quarantined_and_paid_for_its_time():
    reader = Annotations()
    reader.hourly_wage, reader.reward_per_task, reader.max_active_s, reader.currency = 36.0, 0.0, 8 * 3600.0, "EUR"
    answer = reader._answer("loop/k1", {"id": 9, "completed_by": 4, "lead_time": 100.0,
                                        "result": _region({"choices": "bogus"})}, "created", "v1")
    assert answer.label is None and "value.choices must be a list of label strings" in answer.problem
    assert answer.active_s == 100.0 and answer.reward == pytest.approx(1.0)
