"""What an answer means for the plan is the form's data: a question added to a form's YAML file
shows in the month's workbook with no code changed, the chain of steps and its deadlines come
from the form, the report upward finds its remarks and the occupancy by what the form says they
are, not by their ids, and a form whose meaning cannot hold is refused with a message naming
it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from docx import Document
from openpyxl import load_workbook
from pydantic import ValidationError
from sqlalchemy import select

from bot.app import App
from domain.calendar import Period
from domain.forms import Form
from domain.roles import ClusterKind, Role
from reports import document
from reports.progress import Answer, next_step
from reports.summary import summarise
from reports.workbook import build
from store.access import accept_invitation, create_invitation
from store.db import unit_of_work
from store.forms import FOLDER, FormError, load_forms, parse_form
from store.models import Cluster, ClusterStep, Report
from tests.test_status import FOUNDED_DONE, INVESTOR_B, month, report

__all__ = ["month"]
HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2021, 6, 26, 9, 0, tzinfo=HANOI)
INVESTOR = "903"
WORKERS = """
  - id: workers
    type: number
    min: 0
    unit: {vi: "người", en: "people"}
    label: {vi: "Hiện có bao nhiêu lao động làm việc tại cụm?", en: "How many people work there?"}
    column: {vi: "Số lao động", en: "Workers", width: 14}
"""


def forms_folder(
    tmp_path: Path, edit: Callable[[str], str] = lambda text: text, name: str = "founded.yaml"
) -> Path:
    """A copy of the bot's forms, the file `name` changed by `edit`."""
    folder = tmp_path / "forms"
    folder.mkdir()
    for path in FOLDER.glob("*.yaml"):
        shutil.copyfile(path, folder / path.name)
    changed = folder / name
    changed.write_text(edit(changed.read_text(encoding="utf-8")), encoding="utf-8")
    return folder


def with_workers(text: str) -> str:
    """The founded form with one more question, before the free-text ones."""
    marker = "\n  - id: difficulties\n"
    assert marker in text
    return text.replace(marker, WORKERS + marker, 1)


async def founded_sheet(app: App, path: Path, forms: dict[str, Form] | None) -> Any:
    async with unit_of_work(app.sessions) as session:
        calendar = app.deps().calendar
        summary = await summarise(session, Period(2021, 6), calendar, forms=forms)
        await build(session, summary, calendar, path, NOW)
    return load_workbook(path)["PL3 CCN thành lập mới"]


async def test_a_question_added_in_yaml_is_a_workbook_column(app: App, tmp_path: Path) -> None:
    forms = load_forms.__wrapped__(forms_folder(tmp_path, with_workers))
    assert [q.id for q in forms["founded"].columns][-2:] == ["wastewater", "workers"]
    async with unit_of_work(app.sessions) as session:
        invitation = await create_invitation(
            session, now=NOW, role=Role.INVESTOR, clusters=["dai-thang"]
        )
        await accept_invitation(
            session,
            invitation.token,
            channel="telegram",
            chat_id=INVESTOR,
            display_name="Chị Lan",
            locale="vi",
            now=NOW,
        )
    values = {**FOUNDED_DONE, "workers": "250"}
    await report(app, INVESTOR, "dai-thang", "2021-06", values, "2021-06-18T10:00")

    # the sheet's header is on row 8, under the title block; its rows name the clusters (no
    # code column); percentages are fractions under a % format
    before = [c.value for c in (await founded_sheet(app, tmp_path / "a.xlsx", None))[8]]
    sheet = await founded_sheet(app, tmp_path / "b.xlsx", forms)
    header = [c.value for c in sheet[8]]
    after = before.index("Trạm XLNT") + 1  # the new column follows the form's order
    assert "Số lao động" not in before
    assert header == [*before[:after], "Số lao động", *before[after:]]
    rows = {
        r[1]: dict(zip(header, r, strict=True))
        for r in sheet.iter_rows(min_row=9, values_only=True)
    }
    async with app.sessions() as session:
        found = await session.execute(select(Cluster.code, Cluster.name))
        names = {code: name for code, name in found.all()}
    dai = rows[names["dai-thang"]]
    assert dai["Số lao động"] == 250  # a number, as the form's other numbers
    assert dai["GPMB (%)"] == 1 and dai["Trạm XLNT"] == "Hoạt động, đạt chuẩn"
    assert rows[names["phu-tuc"]]["Số lao động"] is None  # no report: an empty cell
    letter = sheet.cell(row=8, column=header.index("Số lao động") + 1).column_letter
    assert sheet.column_dimensions[letter].width == 14


def renamed(*pairs: tuple[str, str]) -> Callable[[str], str]:
    """An edit of a form's file giving questions other ids (nothing else of them changes)."""

    def edit(text: str) -> str:
        for old, new in pairs:
            marker = f"\n  - id: {old}\n"
            assert marker in text
            text = text.replace(marker, f"\n  - id: {new}\n", 1)
        return text

    return edit


async def month_document(app: App, path: Path, forms: dict[str, Form] | None) -> list[str]:
    """The paragraphs of June's report upward, read with `forms` (None: the bot's own)."""
    async with app.sessions() as session:
        calendar = app.deps().calendar
        summary = await summarise(session, Period(2021, 6), calendar, forms=forms)
        written = await document.build(session, summary, calendar, path, NOW)
    return [p.text for p in Document(str(written)).paragraphs]


async def cluster_name(app: App, code: str) -> str:
    async with app.sessions() as session:
        name = await session.scalar(select(Cluster.name).where(Cluster.code == code))
    assert name is not None
    return name


async def test_the_remarks_are_the_questions_the_form_says_they_are(
    month: App, tmp_path: Path
) -> None:
    """The report upward quotes, under "Khó khăn, vướng mắc" and "Kiến nghị, đề xuất", the
    answers of the questions saying `upward: difficulty` and `upward: proposal`: renamed in
    the YAML file, they land under the same headings."""
    edit = renamed(("difficulties", "obstacles"), ("proposals", "requests"))
    forms = load_forms.__wrapped__(forms_folder(tmp_path, edit))
    values = {**FOUNDED_DONE, "obstacles": "Thiếu vốn GPMB.", "requests": "Đề nghị hỗ trợ vốn."}
    await report(month, INVESTOR, "dai-thang", "2021-06", values, "2021-06-19T10:00", version=2)
    dai_thang = await cluster_name(month, "dai-thang")

    lines = await month_document(month, tmp_path / "renamed.docx", forms)
    difficulties = lines.index("1. Khó khăn, vướng mắc")
    proposals = lines.index("2. Kiến nghị, đề xuất")
    assert lines[difficulties + 1 : proposals] == [f"- “Thiếu vốn GPMB.” — {dai_thang} (Chị Lan)."]
    assert lines[proposals + 1] == f"- “Đề nghị hỗ trợ vốn.” — {dai_thang} (Chị Lan)."
    # the bot's own form asks no such questions: the same answers are nobody's remarks
    lines = await month_document(month, tmp_path / "own.docx", None)
    assert "Thiếu vốn GPMB." not in "\n".join(lines)
    assert "Trong tháng 6/2021 không có đơn vị nào nêu khó khăn, vướng mắc." in lines


async def test_the_occupancy_is_the_question_the_form_says_it_is(
    month: App, tmp_path: Path
) -> None:
    """The occupancy the report upward follows per group is the question saying `upward:
    occupancy`, whatever its id."""
    edit = renamed(("occupancy", "fill_rate"))
    forms = load_forms.__wrapped__(forms_folder(tmp_path, edit, "operating.yaml"))
    await report(
        month,
        INVESTOR_B,
        "binh-phu",
        "2021-06",
        {"fill_rate": "71", "htkt_complete": "yes", "wastewater": "operating"},
        "2021-06-21T10:00",
        form="operating",
        version=2,
    )
    binh_phu = await cluster_name(month, "binh-phu")

    text = "\n".join(await month_document(month, tmp_path / "renamed.docx", forms))
    assert "- Tỷ lệ lấp đầy: trong tháng 6/2021 có 1 cụm báo cáo thay đổi: " in text
    assert f"{binh_phu} (68,45 % theo Kế hoạch → 71 %)" in text
    assert "Tỷ lệ lấp đầy bình quân theo số liệu báo cáo: 71 % (1 cụm có số liệu)." in text
    # read with the bot's own form, the figure is the one its `occupancy` question had
    text = "\n".join(await month_document(month, tmp_path / "own.docx", None))
    assert f"{binh_phu} (68,45 % theo Kế hoạch → 70 %)" in text


def chain_form() -> Form:
    return parse_form(
        {
            "form": "founded",
            "version": 1,
            "title": {"vi": "T", "en": "T"},
            "questions": [
                {
                    "id": "a",
                    "type": "yesno",
                    "label": {"vi": "A?", "en": "A?"},
                    "completes": [{"step": "s1", "when": ["yes"], "due": "planned_groundbreaking"}],
                },
                {
                    "id": "b",
                    "type": "percent",
                    "label": {"vi": "B?", "en": "B?"},
                    "completes": [
                        {"step": "s2", "when": [100]},
                        {"step": "s3", "when": [90, 100], "due": "planned_completion"},
                    ],
                },
            ],
        }
    )


def test_the_chain_and_its_deadlines_are_the_forms() -> None:
    cluster = Cluster(
        kind=ClusterKind.FOUNDED_2018_2020.value,
        planned_groundbreaking="2021-03",
        planned_completion="2021-Q4",
    )
    steps = [ClusterStep(kind="s3", text="S3"), ClusterStep(kind="s1", text="S1")]
    form = chain_form()

    def answers(**values: str) -> dict[str, Answer]:
        return {k: Answer(v, None, Report()) for k, v in values.items()}

    march, april = datetime(2021, 3, 31, 12, tzinfo=HANOI), datetime(2021, 4, 1, tzinfo=HANOI)
    first = next_step(cluster, steps, answers(a="no"), march, form)
    assert first is not None and first.step.text == "S1" and not first.late
    first = next_step(cluster, steps, answers(), april, form)
    assert first is not None and first.step.text == "S1" and first.late
    # s2 is not in this cluster's plan: after s1 comes s3, due by the completion quarter
    then = next_step(cluster, steps, answers(a="yes", b="80"), april, form)
    assert then is not None and then.step.text == "S3" and not then.late
    then = next_step(cluster, steps, answers(a="yes", b="80"), datetime(2022, 1, 1, tzinfo=HANOI))
    assert then is None  # the bot's own founded form has no step s1: nothing of its chain
    assert next_step(cluster, steps, answers(a="yes", b="90.0"), april, form) is None


def founded_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((FOLDER / "founded.yaml").read_text(encoding="utf-8"))
    return data


def question(data: dict[str, Any], qid: str) -> dict[str, Any]:
    found: dict[str, Any] = next(q for q in data["questions"] if q["id"] == qid)
    return found


BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "gpmb_funds",
        {"completes": [{"step": "funds_transfer", "when": ["paid"]}]},
        "gpmb_funds: completes funds_transfer when 'paid', which is not one of its answers "
        "(not_transferred, partly, fully)",
    ),
    (
        "groundbreaking",
        {"completes": [{"step": "groundbreaking", "when": [True]}]},
        "groundbreaking: completes groundbreaking when True, which is not one of its answers "
        "(yes, no) (quote it: YAML reads a bare yes or no as true or false)",
    ),
    (
        "gpmb",
        {"completes": [{"step": "gpmb", "when": [120]}]},
        "gpmb: completes gpmb when 120, which is not a percent it takes",
    ),
    (
        "difficulties",
        {"completes": [{"step": "other", "when": ["done"]}]},
        "difficulties: a text question cannot complete a step or count toward a target",
    ),
    (
        "land_lease",
        {"completes": [{"step": "gpmb", "when": [100]}]},
        "founded: step gpmb is completed by both gpmb and land_lease",
    ),
    (
        "htkt",
        {"completes": [{"step": "infrastructure_complete", "when": [100], "due": "soon"}]},
        "planned_groundbreaking",
    ),
    (
        "groundbreaking",
        {"counts_toward": {"target": "groundbreakings", "when": ["yes"], "dated_by": "htkt"}},
        "founded: groundbreaking is dated by 'htkt', which is not a date question of this form",
    ),
    (
        "wastewater",
        {"counts_toward": {"target": "wastewater_new", "when": ["operating"], "among": ["x"]}},
        "target wastewater_new: 'x' is not a kind of cluster",
    ),
    (
        "wastewater",
        {
            "counts_toward": {
                "target": "wastewater_new",
                "when": ["operating"],
                "among": ["operating_complete"],
            }
        },
        "founded: wastewater counts operating_complete clusters toward wastewater_new, but they "
        "answer the operating form",
    ),
    (
        "qhct",
        {"column": {"vi": "QHCT", "en": "QHCT", "width": 0}},
        "column 'QHCT': width 0 is not 4–100",
    ),
    (
        "qhct",
        {"upward": "difficulty"},
        "qhct: upward difficulty is for a text question, not a yesno",
    ),
    ("gpmb", {"upward": "remark"}, "Input should be 'difficulty', 'proposal' or 'occupancy'"),
    (
        "proposals",
        {"upward": "difficulty"},
        "founded: difficulties and proposals are both upward difficulty",
    ),
]


@pytest.mark.parametrize(("qid", "change", "message"), BAD, ids=[m[:40] for _q, _c, m in BAD])
def test_a_meaning_that_cannot_hold_is_refused(
    qid: str, change: dict[str, Any], message: str
) -> None:
    data = founded_data()
    question(data, qid).update(change)
    with pytest.raises(ValidationError) as refused:
        parse_form(data)
    assert message in str(refused.value)


def test_a_column_on_a_form_no_cluster_answers_is_refused() -> None:
    data: dict[str, Any] = yaml.safe_load((FOLDER / "tasks.yaml").read_text(encoding="utf-8"))
    data["each_item"][0]["column"] = {"vi": "Tiến độ", "en": "Progress"}
    with pytest.raises(ValidationError, match="tasks: status is asked per item"):
        parse_form(data)
    data = yaml.safe_load((FOLDER / "tasks.yaml").read_text(encoding="utf-8"))
    data["questions"][0]["column"] = {"vi": "Khó khăn", "en": "Difficulties"}
    with pytest.raises(ValidationError, match="no kind of cluster answers this form"):
        parse_form(data)


def test_an_occupancy_or_a_per_item_remark_is_refused_on_the_tasks_form() -> None:
    """Only a cluster has an occupancy rate; the report upward quotes a form's own questions,
    not those asked per item."""
    data: dict[str, Any] = yaml.safe_load((FOLDER / "tasks.yaml").read_text(encoding="utf-8"))
    data["questions"].append(
        {"id": "rate", "type": "percent", "upward": "occupancy", "label": {"vi": "?", "en": "?"}}
    )
    with pytest.raises(ValidationError, match="tasks: rate is upward occupancy, but no kind"):
        parse_form(data)
    data = yaml.safe_load((FOLDER / "tasks.yaml").read_text(encoding="utf-8"))
    data["each_item"][2]["upward"] = "difficulty"
    with pytest.raises(ValidationError, match="tasks: note is asked per item"):
        parse_form(data)


def test_the_bot_refuses_to_load_a_bad_form_file_and_names_it(tmp_path: Path) -> None:
    folder = forms_folder(tmp_path, lambda text: text.replace("when: [fully]", "when: [paid]", 1))
    with pytest.raises(FormError) as refused:
        load_forms.__wrapped__(folder)
    text = str(refused.value)
    assert text.startswith("founded.yaml: ")
    assert (
        "gpmb_funds: completes funds_transfer when 'paid', which is not one of its answers" in text
    )


def tasks_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((FOLDER / "tasks.yaml").read_text(encoding="utf-8"))
    return data


def _no_progress(data: dict[str, Any]) -> None:
    status = data["each_item"][0]
    del status["means"]
    for choice in status["choices"]:
        del choice["means"]


def _share_asked_once(data: dict[str, Any]) -> None:
    data["questions"].append(
        {"id": "overall", "type": "percent", "means": "share_done", "label": {"vi": "?", "en": "?"}}
    )


BAD_PROGRESS: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (_no_progress, "tasks: no question asked per item says `means: progress`"),
    (
        lambda d: d["each_item"][0]["choices"][1].pop("means"),
        "status: choice in_progress does not say what it means (done, under_way, not_started)",
    ),
    (
        lambda d: d["each_item"][0]["choices"][2].update(means="under_way"),
        "status: no choice means done",
    ),
    (
        lambda d: d["each_item"][0]["choices"][2].update(means="finished"),
        "Input should be 'done', 'under_way' or 'not_started'",
    ),
    (
        lambda d: d["each_item"][1].update(means="progress"),
        "percent: means progress is for a choice, not a percent",
    ),
    (
        lambda d: d["each_item"][2].update(means="share_done"),
        "note: means share_done is for a percent, not a text",
    ),
    (_share_asked_once, "tasks: overall is not asked per item: it cannot mean share_done"),
]


@pytest.mark.parametrize(
    ("change", "message"), BAD_PROGRESS, ids=[m[:40] for _c, m in BAD_PROGRESS]
)
def test_a_progress_that_cannot_be_read_is_refused(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    """The tasks form says which per-item answer is the progress and what each choice counts
    as (reports/tasks.py reads nothing else): a form that does not, or not once, is refused."""
    data = tasks_data()
    form = parse_form(data)
    assert form.progress is not None and form.progress.id == "status"
    assert form.share_done is not None and form.share_done.id == "percent"
    assert [form.progress.stage(c.value) for c in form.progress.choices] == [
        "not_started",
        "under_way",
        "done",
    ]
    change(data)
    with pytest.raises(ValidationError) as refused:
        parse_form(data)
    assert message in str(refused.value)
