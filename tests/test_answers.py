"""Every kind of answer, read as people type it, and its hint when it cannot be read."""

from __future__ import annotations

from datetime import date

import pytest

from domain import answers
from domain.forms import Choice, Question, Text
from store.forms import load_forms, parse_question

TODAY = date(2021, 6, 10)


def q(kind: str, **extra: object) -> Question:
    return parse_question({"id": "x", "type": kind, "label": {"vi": "?", "en": "?"}, **extra})


CHOICE = q(
    "choice",
    choices=(
        Choice(value="a", vi="Chưa xây dựng", en="Not built"),
        Choice(value="b", vi="Xong", en="Done"),
    ),
)


@pytest.mark.parametrize(
    ("question", "typed", "stored", "shown"),
    [
        (q("percent"), "68,45%", "68.45", "68,45 %"),
        (q("percent"), " 100 ", "100", "100 %"),
        (q("number", min=0, unit=Text(vi="hộ", en="households")), "1.234", "1.234", "1,23 hộ"),
        (q("number"), "1.234,5", "1234.5", "1.234,5"),
        (q("yesno"), "Có", "yes", "Có"),
        (q("yesno"), "chưa", "no", "Không"),
        (q("yesno"), "K", "no", "Không"),
        (CHOICE, "chua xay dung", "a", "Chưa xây dựng"),
        (CHOICE, "2", "b", "Xong"),
        (q("date"), "25/6", "2021-06-25", "25/06/2021"),
        (q("date"), "25/06/2021", "2021-06-25", "25/06/2021"),
        (q("date"), "5.7.21", "2021-07-05", "05/07/2021"),
        (q("month"), "6/2021", "2021-06", "06/2021"),
        (q("text"), "  Chậm GPMB  ", "Chậm GPMB", "Chậm GPMB"),
    ],
)
def test_read_and_written_back(question: Question, typed: str, stored: str, shown: str) -> None:
    value = answers.parse(question, typed, TODAY)
    assert value == stored
    assert answers.display(question, value, "vi") == shown


@pytest.mark.parametrize(
    ("question", "typed", "hint"),
    [
        (q("percent"), "nhiều", "từ 0 đến 100"),
        (q("percent"), "101", "từ 0 đến 100"),
        (q("number", min=0), "-1", "Vui lòng gửi một số"),
        (q("yesno"), "có lẽ", "bấm Có hoặc Không"),
        (CHOICE, "khác", "bấm chọn một mục"),
        (q("date"), "31/2", "ngày/tháng/năm"),
        (q("date"), "hôm qua", "ngày/tháng/năm"),
        (q("month"), "13/2021", "tháng/năm"),
        (q("text", max_length=5), "quá dài rồi", "không quá 5 ký tự"),
        (q("text"), "   ", "không quá 1000 ký tự"),
    ],
)
def test_unreadable_answers_get_a_vietnamese_hint(
    question: Question, typed: str, hint: str
) -> None:
    with pytest.raises(answers.Unreadable):
        answers.parse(question, typed, TODAY)
    assert hint in answers.hint(question, "vi")


def test_forms_load_and_use_the_plan_s_words() -> None:
    forms = load_forms()
    assert set(forms) == {"founded", "operating", "tasks"}
    founded = {x.id: x for x in forms["founded"].questions}
    assert founded["land_lease"].ask_if is not None
    assert founded["land_lease"].ask_if.holds("100") and not founded["land_lease"].ask_if.holds(
        "99.5"
    )
    assert (
        founded["gpmb"].monotonic
        and not {x.id: x for x in forms["operating"].questions}["occupancy"].monotonic
    )
    assert "QHCT 1/500" in founded["qhct"].label.vi
