"""The button payload codec (handlers.payloads): every kind written as before and read back as
itself; Telegram's 64 bytes checked when a payload is written; anything malformed read as None
(the handlers refuse it: tests/test_security_payloads.py), never an exception."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.calendar import Period
from domain.forms import Item, expand
from domain.subjects import Subject
from handlers import payloads
from handlers.payloads import (
    Back,
    Choose,
    ClusterCard,
    Done,
    Edit,
    FixReport,
    Keep,
    Kind,
    Language,
    Missing,
    OpenReport,
    PaperClaim,
    PaperDecision,
    Payload,
    PickSubject,
    ReviewDecision,
    ReviewReport,
    Skip,
    Submit,
    YesNo,
)
from store.forms import load_forms

REGISTRY = Path(__file__).parents[1] / "store" / "registry"
JUNE = Period(2021, 6)

# Each kind, and the text the bot always wrote for it (reminders sent before the codec carry
# these: they must keep working).
WRITTEN: list[tuple[Payload, str]] = [
    (ReviewReport(7), "review:7"),
    (ReviewDecision(7, True), "accept:7"),
    (ReviewDecision(7, False), "changes:7"),
    (FixReport(7), "fix:7"),
    (PickSubject(0), "subject:0"),
    (OpenReport(Subject.cluster("dai-thang"), JUNE), "report:cluster:dai-thang:2021-06"),
    (OpenReport(Subject.org(7), JUNE), "report:org:7:2021-06"),
    (YesNo("qhct", True), "a:qhct:yes"),
    (YesNo("qhct", False), "a:qhct:no"),
    (Choose("gpmb_funds", 2), "a:gpmb_funds:2"),
    (Choose("t14.status", 0), "a:t14.status:0"),
    (Keep("gpmb"), "keep:gpmb"),
    (Skip("s-dai-thang-3.note"), "skip:s-dai-thang-3.note"),
    (Done("photos"), "done:photos"),
    (Back("gpmb", True), "back:gpmb:yes"),
    (Back("gpmb", False), "back:gpmb:no"),
    (Edit(12), "edit:12"),
    (Submit(), "submit"),
    (Language("vi"), "lang:vi"),
    (Language("en"), "lang:en"),
    (PaperClaim(JUNE), "paper:2021-06"),
    (PaperDecision(42, True), "paperok:42"),
    (PaperDecision(42, False), "paperno:42"),
    (Missing(JUNE), "missing:2021-06"),
    (ClusterCard("dai-thang"), "cluster:dai-thang"),
]


@pytest.mark.parametrize(("value", "text"), WRITTEN)
def test_each_kind_is_written_as_before_and_read_back(value: Payload, text: str) -> None:
    assert payloads.encode(value) == text
    assert payloads.decode(text) == value
    pressed = payloads.read(text)
    assert pressed is not None and pressed.value == value and pressed.kind is not None


def test_every_kind_has_a_value_written() -> None:
    assert {payloads.kind_of(text) for _value, text in WRITTEN} == set(Kind)


def test_no_payload_is_none() -> None:
    assert payloads.read(None) is None
    assert payloads.read("") is None  # Telegram's callback with no data


def test_the_64_byte_limit_is_checked_when_writing() -> None:
    fits = "q" + "x" * (payloads.LIMIT - len("keep:") - 1)
    assert len(payloads.encode(Keep(fits)).encode()) == payloads.LIMIT
    with pytest.raises(payloads.PayloadTooLong):
        payloads.encode(Keep(fits + "x"))
    with pytest.raises(payloads.PayloadTooLong):
        payloads.encode(OpenReport(Subject.cluster("a" * 50), JUNE))
    with pytest.raises(payloads.PayloadTooLong):
        payloads.encode(ClusterCard("a" * 57))
    assert payloads.encode(ClusterCard("a" * 56)) == "cluster:" + "a" * 56


def test_a_value_that_would_not_read_back_is_not_written() -> None:
    wrongs: list[Payload] = [
        Keep("gpmb:yes"),
        Choose("qhct", -1),
        Choose("qhct", 1000),
        PickSubject(-1),
        Edit(1000),
        Language("fr"),
        PaperDecision(10**9, True),
        ClusterCard("Đại Thắng"),
        YesNo("", True),
    ]
    for wrong in wrongs:
        with pytest.raises(ValueError):
            payloads.encode(wrong)


# What test_security_payloads.py forges (and a few more): none is a payload of ours.
MALFORMED = [
    "a:qhct:maybe",
    "a:qhct:yes:x",
    "a:qhct:",
    "a:gpmb_funds:-1",
    "a:gpmb_funds:٢",
    "a:gpmb_funds:+1",
    "a:gpmb_funds: 1",
    "a:gpmb_funds:1_0",
    "a:gpmb_funds:99999999999999999999999",
    "a:QHCT:yes",
    "a::yes",
    "keep:qhct:x",
    "keep:",
    "back:gpmb:maybe",
    "back:gpmb:yes:x",
    "edit:0x",
    "edit:²",
    "edit:٣",
    "edit:-1",
    "edit:",
    "edit:1:x",
    "subject:-1",
    "subject:٠",
    "subject:0:x",
    "subject:",
    "submit:now",
    "report:cluster:dai-thang:2021-13",
    "report:cluster:dai-thang:2021-6",
    "report:cluster:dai-thang:2021-06\n",
    "report:cluster:dai-thang:２０２１-０６",
    "report:cluster:dai-thang:",
    "report:cluster:Dai-Thang:2021-06",
    "report:org:0:2021-06",
    "report:",
    "lang:xx",
    "lang:",
    "lang:en:x",
    "paper:garbage",
    "paper:2021-06 ",
    "paperok:²",
    "paperno:99999999999999999999999",
    "paperok:",
    "missing:junk",
    "missing:2021-06 Huyện X",
    "cluster:" + "x" * 5000,
    "cluster:",
    "cluster:dai thang",
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_payloads_read_as_none_with_their_kind(text: str) -> None:
    assert payloads.decode(text) is None
    pressed = payloads.read(text)
    assert pressed is not None and pressed.value is None and pressed.kind is not None


@pytest.mark.parametrize("text", ["bogus", "a", ":::", "submit ", "unsupported:sticker", "x:y"])
def test_unknown_payloads_have_no_kind(text: str) -> None:
    assert payloads.kind_of(text) is None and payloads.decode(text) is None


@settings(max_examples=500, deadline=None, derandomize=True)
@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda k, rest: f"{k}:{rest}", st.sampled_from([k.value for k in Kind]), st.text()
        ),
    )
)
def test_reading_never_raises_and_what_is_read_writes_back(text: str) -> None:
    value = payloads.decode(text)
    if value is not None and len(text.encode()) <= payloads.LIMIT:
        assert payloads.decode(payloads.encode(value)) == value


def _registry(name: str) -> list[dict[str, str]]:
    with (REGISTRY / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_every_button_of_the_registry_and_the_forms_fits() -> None:
    """Every cluster's reminder and card buttons, and every question's buttons, with the items
    of a district's or department's report as long as the registry makes them: its steps, its
    Phụ lục 1 tasks and its section III duties (`d8-12`, every duty of duties.csv)."""
    codes = [row["code"] for row in _registry("clusters.csv")]
    seqs = [int(row["seq"]) for row in _registry("steps.csv")]
    numbers = [int(row["number"]) for row in _registry("tasks.csv")]
    duties = [row["code"] for row in _registry("duties.csv")]
    assert len(duties) == 57 and "d8-12" in duties
    for code in codes:
        payloads.encode(OpenReport(Subject.cluster(code), JUNE))
        payloads.encode(ClusterCard(code))
    longest_seq = max(seqs) + 50  # steps an admin adds later get the next numbers
    items = [Item(f"s-{code}-{longest_seq}", "") for code in codes]
    items += [Item(f"t{n}", "") for n in numbers]
    items += [Item(code, "") for code in duties]
    asked: set[str] = set()
    for form in load_forms().values():
        for question in expand(form, items):
            asked.add(question.id)
            for value in (
                Keep(question.id),
                Skip(question.id),
                Done(question.id),
                Back(question.id, True),
                YesNo(question.id, False),
                Choose(question.id, max(len(question.choices) - 1, 0)),
            ):
                payloads.encode(value)  # raises if it would not fit
    progress = load_forms()["tasks"].progress
    assert progress is not None
    assert {f"{code}.{progress.id}" for code in duties} <= asked  # their buttons were encoded
    for index in (0, 999):
        payloads.encode(PickSubject(index))
        payloads.encode(Edit(index))
