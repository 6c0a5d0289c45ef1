"""The report Sở Công Thương sends upward by the 28th, checked on the status tests' hand-built
June 2021 (tests/test_status.py, `month`): the DOCX in the layout of Nghị định 30/2020 says what
the month's figures say and nothing else; the workbook, its appendices, is set up to print; and
LibreOffice prints both as intended (A4, the summary on one page, Phụ lục 3 one page wide).

With CCN_EXAMPLES_DIR set, the files and their PDFs are also copied there (see
scripts/render_examples.sh, which makes the pictures in docs/)."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import shutil
import subprocess
import time
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from docx import Document
from docx.shared import Length
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import select

from bot.app import App
from domain.calendar import Period
from handlers import conversation, status
from handlers.context import Deps
from reports import chart, offload, upward
from reports.summary import Summary, summarise
from store.db import unit_of_work
from store.models import Cluster, Organisation
from tests.test_status import (
    ADMIN,
    INVESTOR_A,
    INVESTOR_B,
    at,
    chat_for,
    month,
    person_id,
    report,
    tasks_report,
)

__all__ = ["month"]
NOW = at("2021-06-26T09:00")  # the 26th: Sở Công Thương writes June's report
JUNE = Period(2021, 6)
HEADER_ROW = 8
SHEETS = ("Tổng hợp", "PL1 Nhiệm vụ", "PL2 CCN hoạt động", "PL3 CCN thành lập mới", "Chưa báo cáo")
# June's targets as the report must state them: (plan, actual, assessment), as printed.
TARGETS = {
    # Bình Phú's report, and the registry's groups for the clusters that have not said it,
    # each way counted, how the latter are counted said under the table (*)
    "operating_full_infrastructure": (
        "100 %",
        "40 % (14 trên 35 cụm trong danh mục; 1 cụm theo báo cáo, 34 theo danh mục) (*)",
        "Đang thực hiện",
    ),
    "groundbreakings": ("43 cụm", "2 cụm", "Đang thực hiện"),
    "groundbreakings_q1": ("1 cụm", "1 cụm", "Đạt"),
    "groundbreakings_q2": ("23 cụm", "1 cụm", "Đang thực hiện"),
    "groundbreakings_q3": ("13 cụm", "0 cụm", "Chưa đến kỳ"),
    "groundbreakings_q4": ("6 cụm", "0 cụm", "Chưa đến kỳ"),
    "infrastructure_completed": ("≥ 20 cụm", "1 cụm", "Đang thực hiện"),
    "new_clusters": ("10–15 cụm", "0 cụm", "Đang thực hiện"),
    "wastewater_new": ("100 %", "2,4 % (1 trên 42 cụm trong danh mục)", "Đang thực hiện"),
    "wastewater_operating": ("95 %", "2,9 % (1 trên 35 cụm trong danh mục)", "Đang thực hiện"),
}


async def june(app: App) -> Summary:
    async with app.sessions() as session:
        return await summarise(session, JUNE, app.deps().calendar)


async def files_of(app: App, folder: Path, locale: str = "vi") -> upward.MonthFiles:
    calendar = app.deps().calendar
    async with app.sessions() as session:
        summary = await summarise(session, JUNE, calendar)
        return await upward.build(session, summary, calendar, folder, NOW, locale)


async def names_of(app: App, *codes: str) -> list[str]:
    async with app.sessions() as session:
        rows = await session.execute(
            select(Cluster.code, Cluster.name).where(Cluster.code.in_(codes))
        )
        found = {code: name for code, name in rows.all()}
    return [found[c] for c in codes]


def document_text(path: Path) -> tuple[str, list[list[str]]]:
    """The document's paragraphs, and the rows of its tables (cell texts)."""
    document = Document(str(path))
    text = "\n".join(p.text for p in document.paragraphs)
    rows = [[c.text for c in row.cells] for t in document.tables for row in t.rows]
    return text, rows


# --- the document --------------------------------------------------------------------------


async def test_document_says_what_the_month_did(month: App, tmp_path: Path) -> None:
    files = await files_of(month, tmp_path)
    text, rows = document_text(files.document)
    cells = "\n".join(c for row in rows for c in row)
    # the heading of Nghị định 30/2020: body and motto side by side, number to fill, place, date
    assert rows[0][0].splitlines() == ["UBND THÀNH PHỐ HÀ NỘI", "SỞ CÔNG THƯƠNG"]
    assert rows[0][1].splitlines()[:2] == [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
    ]
    assert rows[1] == ["Số: …/BC-SCT", "Hà Nội, ngày … tháng … năm 2021"]
    assert (
        "BÁO CÁO\nKết quả thực hiện Kế hoạch số 68/KH-UBND ngày 17/3/2021 của UBND Thành phố"
        in text
    )
    assert "trên địa bàn thành phố Hà Nội năm 2021, tháng 6/2021" in text
    # the reporting rate, and who has not reported, by name
    assert "đã nhận 3 báo cáo (đạt 60 %), trong đó 2 báo cáo đúng hạn, 1 báo cáo muộn" in text
    summary = await june(month)
    assert summary.missing
    for slot in summary.missing:
        line = next(line for line in text.splitlines() if slot.title in line)
        assert line.startswith(f"- {slot.district or 'Các sở, ngành Thành phố'}: ")
    assert "Sở Tài nguyên và Môi trường (Chị Mai)" in text
    assert "UBND Huyện Phú Xuyên (Anh Hùng)" in text
    dai_thang, phu_tuc, binh_phu = await names_of(month, "dai-thang", "phu-tuc", "binh-phu")
    assert f"Báo cáo muộn: {phu_tuc}." in text
    # every target of the plan, with plan and actual; a figure not reported says so
    targets = {t.code: t for t in summary.targets}
    assert set(TARGETS) == set(targets)
    for code, (plan, actual, assessed) in TARGETS.items():
        row = next(r for r in rows if len(r) == 5 and r[1] == targets[code].label)
        assert row[2:] == [plan, actual, assessed], code
    # every cluster that broke ground, with its date; what moved this month, cluster by cluster
    assert (
        "lũy kế 2 trên 42 cụm trong danh mục đã khởi công: "
        f"{dai_thang} (Huyện Phú Xuyên, ngày 10/05/2021); "
        f"{phu_tuc} (Huyện Phú Xuyên, ngày 01/02/2021)." in text
    )
    assert f"Trong tháng 6/2021 có cụm báo cáo khởi công mới: {dai_thang}; {phu_tuc}." in text
    assert f"{dai_thang} (80 % → 100 %); {phu_tuc} (chưa có số liệu → 97 %)" in text
    assert "Lũy kế 1 trên 42 cụm trong danh mục đã hoàn thành GPMB." in text
    assert "(*) Chỉ tiêu 1: cụm chưa báo cáo HTKT đã đồng bộ, hoàn thiện hay chưa thì tính" in text
    assert f"{binh_phu} (chưa có số liệu → Hoạt động, đạt chuẩn)" in text
    assert f"{binh_phu} (68,45 % theo Kế hoạch → 70 %)" in text
    # late steps with their owner (Cầu Bàu GĐ2 was to break ground in April)
    (cau_bau,) = await names_of(month, "cau-bau-gd2")
    owner_line = next(line for line in text.splitlines() if f"— {cau_bau} (" in line)
    assert owner_line.startswith("- UBND Huyện Ứng Hòa: ")
    assert "khởi công theo Kế hoạch: 04/2021" in owner_line
    assert "Nhiệm vụ số 9 (Sở Kế hoạch và Đầu tư; tiến độ: Hoàn thành trong tháng 4/2021)" in text
    # no difficulties were written this month: it says so, and invents none
    assert "Trong tháng 6/2021 không có đơn vị nào nêu khó khăn, vướng mắc." in text
    # recipients and the signer's title, no name
    assert "Nơi nhận:" in cells and "- UBND Thành phố (để báo cáo);" in cells
    signature = rows[-1][1].strip()
    assert signature == "GIÁM ĐỐC"
    assert "./." in text


async def org_answers(app: App, name: str, period: str, values: dict[str, str]) -> None:
    """A task report of the organisation `name` (sent on its behalf by Sở Công Thương's
    officer: who sent it is not what is checked)."""
    who = await person_id(app, ADMIN)
    async with unit_of_work(app.sessions) as session:
        org = await session.scalar(select(Organisation.id).where(Organisation.name == name))
        assert org is not None
        session.add(tasks_report(app, org, period, values, by=who, when=f"{period}-20T10:00"))


async def test_document_says_the_tasks_and_duties_as_reported_up_to_the_month(
    month: App, tmp_path: Path
) -> None:
    """A late task is one the units' latest answers up to the month do not say done (a task
    reported done in May is not late in June); the section III duties reported so far are said
    where the tasks are, each with what was reported."""
    text, _rows = document_text((await files_of(month, tmp_path / "before")).document)
    assert "Nhiệm vụ số 20 (" in text  # due in May 2021, not reported
    assert (
        "Đến tháng 6/2021, chưa có đơn vị nào báo cáo về 15 nhiệm vụ tại mục III của Kế hoạch "
        "(ngoài Phụ lục 1)." in text
    )
    district, environment = "UBND Huyện Phú Xuyên", "Sở Tài nguyên và Môi trường"
    await org_answers(month, district, "2021-05", {"t20.status": "done"})
    await org_answers(
        month, environment, "2021-05", {"t10.status": "in_progress", "t10.percent": "30"}
    )
    await org_answers(
        month,
        "Sở Tài chính",
        "2021-06",
        {"d5-1.status": "in_progress", "d5-1.percent": "40", "d5-5.status": "done"},
    )
    text, _rows = document_text((await files_of(month, tmp_path / "after")).document)
    lines = text.splitlines()
    head = lines.index(
        "Các nhiệm vụ tại Phụ lục 1 đã quá thời hạn mà đến tháng 6/2021 chưa được các đơn vị "
        "báo cáo hoàn thành:"
    )
    assert "chưa có đơn vị báo cáo hoàn thành trong tháng" not in text
    late = [line for line in lines[head + 1 :] if line.startswith("- Nhiệm vụ số ")]
    assert not any(line.startswith("- Nhiệm vụ số 20 (") for line in late)  # done in May
    (ten,) = [line for line in late if line.startswith("- Nhiệm vụ số 10 (")]
    assert ten.endswith(" — đơn vị báo cáo: 1 đang triển khai, bình quân 30 %.")
    duties = lines.index(
        "Nhiệm vụ tại mục III của Kế hoạch, ngoài Phụ lục 1: đến tháng 6/2021 có 2/15 nhiệm vụ "
        "được báo cáo (chi tiết tại Phụ lục 1):"
    )
    assert duties > head
    first, fifth = lines[duties + 1 : duties + 3]
    assert first.startswith(
        "- Sở Tài chính (mục III.5): Rà soát, nghiên cứu đề xuất phương án chuyển đổi"
    )
    assert first.endswith("… — đơn vị báo cáo: 1 đang triển khai, bình quân 40 %.")
    assert fifth.startswith("- Sở Tài chính (mục III.5): ")
    assert fifth.endswith(" — đơn vị báo cáo: 1 đã hoàn thành.")


async def test_document_page_and_type(month: App, tmp_path: Path) -> None:
    document = Document(str((await files_of(month, tmp_path)).document))
    section = document.sections[0]

    def mm(length: Length | None) -> int:  # millimetres, to the twip Word stores
        assert length is not None
        return round(float(length.mm))

    assert (mm(section.page_width), mm(section.page_height)) == (210, 297)
    assert 20 <= mm(section.top_margin) <= 25 and 20 <= mm(section.bottom_margin) <= 25
    assert 30 <= mm(section.left_margin) <= 35 and 15 <= mm(section.right_margin) <= 20
    normal = document.styles["Normal"]
    assert normal.font.name == "Times New Roman" and normal.font.size.pt in (13, 14)
    runs = [r for p in document.paragraphs for r in p.runs] + [
        r for t in document.tables for c in t._cells for p in c.paragraphs for r in p.runs
    ]
    assert runs and all(r.font.name in (None, "Times New Roman") for r in runs)
    sizes = {r.font.size.pt for r in runs if r.font.size is not None}
    assert sizes <= {11, 12, 13, 14}  # 11–12: "Nơi nhận" and the heading's first lines
    body = [r for p in document.paragraphs for r in p.runs if r.text.strip()]
    assert all((r.font.size is None or r.font.size.pt >= 13) for r in body)
    heading, signature = document.tables[0], document.tables[-1]
    for table in (heading, signature):  # the decree's blocks side by side, without borders
        assert table.style is None or table.style.name == "Normal Table"
    targets = document.tables[1].style
    assert targets is not None and targets.name == "Table Grid"  # the targets, ruled


async def test_document_in_english(month: App, tmp_path: Path) -> None:
    text, rows = document_text((await files_of(month, tmp_path, "en")).document)
    assert rows[0][1].startswith("SOCIALIST REPUBLIC OF VIETNAM")
    assert "Results of Plan No. 68/KH-UBND of 17/3/2021 of the city People's Committee" in text
    assert "Not yet reported (2; list in Appendix 4):" in text
    assert rows[-1][1].strip() == "DIRECTOR"


async def test_difficulties_grouped_and_attributed(month: App, tmp_path: Path) -> None:
    same = "Thiếu vốn hoàn thiện hạ tầng."
    await report(
        month,
        INVESTOR_A,
        "dai-thang",
        "2021-06",
        {"difficulties": same, "proposals": "Đề nghị  Thành phố hỗ trợ\nGPMB."},
        "2021-06-19T10:00",
        version=2,
    )
    await report(
        month,
        INVESTOR_B,
        "binh-phu",
        "2021-06",
        {"occupancy": "71", "difficulties": "thiếu vốn hoàn thiện  hạ tầng."},
        "2021-06-21T10:00",
        form="operating",
        version=2,
    )
    text, _rows = document_text((await files_of(month, tmp_path)).document)
    dai_thang, binh_phu = await names_of(month, "dai-thang", "binh-phu")
    assert f"- “{same}” — {binh_phu} (Anh Minh); {dai_thang} (Chị Lan)." in text
    assert f"- “Đề nghị Thành phố hỗ trợ GPMB.” — {dai_thang} (Chị Lan)." in text


# --- the workbook --------------------------------------------------------------------------


def em(ch: str) -> float:
    """A generous width of a Times New Roman character, in ems (capitals widest)."""
    if unicodedata.combining(ch):
        return 0
    return 0.75 if ch.isupper() or ch in "mwMW%" else 0.56


def text_pt(text: str, size: float, bold: bool) -> float:
    return sum(em(c) for c in unicodedata.normalize("NFC", text)) * size * (1.1 if bold else 1)


def column_pt(sheet: Worksheet, column: str) -> float:
    width = sheet.column_dimensions[column].width
    return (width * 7 + 5) * 0.75


def header_fits(sheet: Worksheet, row: int) -> list[str]:
    """Header cells whose text is wider than their column: a word longer than the column, or
    more lines than the row's height holds (characters × font size against the width)."""
    problems = []
    height = sheet.row_dimensions[row].height
    for cell in sheet[row]:
        if not isinstance(cell.value, str):
            continue
        size, bold = cell.font.sz or 11, bool(cell.font.b)
        room = column_pt(sheet, cell.column_letter)
        longest = max(text_pt(w, size, bold) for w in cell.value.split())
        needed = math.ceil(text_pt(cell.value, size, bold) / room)
        if longest > room or height is None or needed * size * 1.1 > height:
            problems.append(f"{sheet.title}!{cell.coordinate} {cell.value!r}")
    return problems


def is_percent(fmt: str) -> bool:
    return "%" in re.sub(r'"[^"]*"', "", fmt)


async def test_workbook_is_ready_to_print(month: App, tmp_path: Path) -> None:
    book = load_workbook((await files_of(month, tmp_path)).workbook)
    assert tuple(book.sheetnames) == SHEETS
    async with month.sessions() as session:
        codes = set((await session.scalars(select(Cluster.code))).all())
    for sheet in book.worksheets:
        setup = sheet.page_setup
        assert setup.orientation == "landscape" and str(setup.paperSize) == sheet.PAPERSIZE_A4
        properties = sheet.sheet_properties.pageSetUpPr
        assert properties is not None and properties.fitToPage
        assert setup.fitToWidth == 1 and setup.fitToHeight == (1 if sheet.title == SHEETS[0] else 0)
        if sheet.title != SHEETS[0]:
            assert sheet.print_title_rows == f"${HEADER_ROW}:${HEADER_ROW}"
            assert sheet.freeze_panes == f"C{HEADER_ROW + 1}"
        footer = sheet.oddFooter
        assert footer is not None and "&P" in (footer.center.text or "")
        margins = sheet.page_margins
        assert 0.3 <= margins.left <= 1 and 0.3 <= margins.top <= 1
        # the title block
        assert (
            sheet["A1"].value == "UBND THÀNH PHỐ HÀ NỘI" and sheet["A2"].value == "SỞ CÔNG THƯƠNG"
        )
        assert str(sheet["A6"].value).startswith("(Kèm theo Báo cáo số …/BC-SCT ngày …/…/2021")
        assert str(sheet["A4"].value).startswith("PHỤ LỤC") or sheet.title == SHEETS[0]
        assert header_fits(sheet, HEADER_ROW) == []
        for row in sheet.iter_rows():
            for cell in row:
                if cell.value is None:
                    continue
                assert cell.font.name == "Times New Roman", cell.coordinate
                if isinstance(cell.value, str):  # no code or slug of the bot printed
                    assert cell.value not in codes, cell.coordinate
                    assert not any(c in cell.value for c in codes if "-" in c), cell.value
                    assert not is_percent(cell.number_format)  # no "100.0 %" as text:
                    assert not re.fullmatch(r"[\d.,\s]+%?", cell.value), cell.coordinate
                if isinstance(cell.value, int | float) and is_percent(cell.number_format):
                    assert 0 <= cell.value <= 1.5, cell.coordinate  # a fraction under a % format
            number = row[0].row
            if number is not None and any(c.value is not None for c in row):
                assert sheet.row_dimensions[number].height, (sheet.title, number)  # fits its text
    founded = book[SHEETS[3]]
    header = [c.value for c in founded[HEADER_ROW]]
    rows = list(founded.iter_rows(min_row=HEADER_ROW + 1, values_only=True))
    numbered = [r for r in rows if isinstance(r[0], int)]
    assert [r[0] for r in numbered] == list(range(1, len(numbered) + 1)) and len(numbered) == 42
    groups = [r[1] for r in rows if r[0] is None and not str(r[1]).startswith("Tổng cộng")]
    assert groups[:2] == ["Huyện Phú Xuyên", "Huyện Gia Lâm"]  # the plan's district rows
    total = dict(zip(header, rows[-1], strict=True))
    assert total["Cụm công nghiệp"] == "Tổng cộng (42 cụm)"
    assert total["Đã khởi công"] == 2 and total["Báo cáo kỳ này"] == 2
    percent_columns = [i for i, h in enumerate(header) if "(%)" in str(h)]
    for r in numbered:  # numbers or empty: never "chưa có số liệu" in a number column
        assert all(r[i] is None or isinstance(r[i], int | float) for i in percent_columns)
    operating = book[SHEETS[2]]
    marks = [r[0] for r in operating.iter_rows(min_row=HEADER_ROW + 1, values_only=True)]
    assert [m for m in marks if isinstance(m, str)] == ["A", "I", "II", "B"]  # the plan's groups
    summary = book[SHEETS[0]]
    rate = next(r for r in summary.iter_rows() if r[0].value == "Toàn Thành phố")
    assert rate[5].value == 0.6 and is_percent(rate[5].number_format)
    infrastructure = next(
        r for r in summary.iter_rows() if str(r[0].value).startswith("100% cụm công nghiệp đang")
    )
    assert infrastructure[2].value == 0.4 and is_percent(infrastructure[2].number_format)
    assert infrastructure[3].value == (
        "14 trên 35 cụm trong danh mục; 1 cụm theo báo cáo, 34 theo danh mục"
    )
    assert str(infrastructure[5].value).startswith("cụm chưa báo cáo HTKT đã đồng bộ")


# --- LibreOffice ---------------------------------------------------------------------------


@dataclass
class Page:
    width: float
    height: float
    text: str

    @property
    def landscape(self) -> bool:
        return self.width > self.height


def _objects(data: bytes) -> dict[int, bytes]:
    return {int(m[1]): m[2] for m in re.finditer(rb"(\d+) 0 obj(.*?)endobj", data, re.S)}


def _stream(obj: bytes) -> bytes:
    found = re.search(rb"stream\r?\n(.*?)endstream", obj, re.S)
    assert found is not None
    # the end-of-line before `endstream` is left to the decompressor, which ignores it
    return zlib.decompressobj().decompress(found[1]) if b"/FlateDecode" in obj else found[1]


def _dictionary(objects: dict[int, bytes], obj: bytes, key: bytes) -> bytes:
    """The value of `key` in an object's dictionary: inline `<< … >>`, or the object it names."""
    inline = re.search(rb"/" + key + rb"\s*<<(.*?)>>", obj, re.S)
    if inline:
        return inline[1]
    ref = re.search(rb"/" + key + rb"\s+(\d+) 0 R", obj)
    return objects[int(ref[1])] if ref else b""


def _cmap(data: bytes) -> dict[bytes, str]:
    def text(hexa: bytes) -> str:
        return bytes.fromhex(hexa.decode()).decode("utf-16-be", errors="replace")

    out: dict[bytes, str] = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", data, re.S):
        for code, uni in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            out[bytes.fromhex(code.decode())] = text(uni)
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", data, re.S):
        for low, high, uni in re.findall(
            rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block
        ):
            first, last, start = int(low, 16), int(high, 16), int(uni, 16)
            for code in range(first, last + 1):
                key = code.to_bytes(len(low) // 2, "big")
                out[key] = chr(start + code - first)
    return out


def pdf_pages(path: Path) -> list[Page]:
    """Each page's size and text, read with a regular expression or two: enough for the PDFs
    LibreOffice writes (fonts with a ToUnicode map, text shown with Tj and TJ)."""
    objects = _objects(path.read_bytes())
    root = next(o for o in objects.values() if re.search(rb"/Type\s*/Pages\b", o))

    def kids(node: bytes) -> list[int]:
        out: list[int] = []
        found = re.search(rb"/Kids\s*\[(.*?)\]", node, re.S)
        for ref in re.findall(rb"(\d+) 0 R", found[1] if found else b""):
            child = objects[int(ref)]
            out += kids(child) if re.search(rb"/Type\s*/Pages\b", child) else [int(ref)]
        return out

    pages = []
    for number in kids(root):
        page = objects[number]
        box = re.search(rb"/MediaBox\s*\[\s*([\d.\s-]+)\]", page) or re.search(
            rb"/MediaBox\s*\[\s*([\d.\s-]+)\]", root
        )
        assert box is not None
        x0, y0, x1, y1 = (float(v) for v in box[1].split())
        fonts: dict[bytes, dict[bytes, str]] = {}
        font_dict = _dictionary(objects, _dictionary(objects, page, b"Resources"), b"Font")
        for name, ref in re.findall(rb"/(\w+)\s+(\d+) 0 R", font_dict):
            unicode = re.search(rb"/ToUnicode\s+(\d+) 0 R", objects[int(ref)])
            fonts[name] = _cmap(_stream(objects[int(unicode[1])])) if unicode else {}
        contents = re.search(rb"/Contents\s*(\[.*?\]|\d+ 0 R)", page, re.S)
        assert contents is not None
        stream = b"".join(_stream(objects[int(r)]) for r in re.findall(rb"(\d+) 0 R", contents[1]))
        words: list[str] = []
        cmap: dict[bytes, str] = {}
        for token in re.finditer(
            rb"/(\w+)\s+[\d.]+\s+Tf|\[(.*?)\]\s*TJ|<([0-9A-Fa-f]*)>\s*Tj|(BT)", stream, re.S
        ):
            if token[1]:
                cmap = fonts.get(token[1], {})
            elif token[4]:
                words.append(" ")
            else:
                for hexa in re.findall(rb"<([0-9A-Fa-f]*)>", token[2] or b"<" + token[3] + b">"):
                    raw = bytes.fromhex(hexa.decode())
                    width = len(next(iter(cmap))) if cmap else 1
                    words.append(
                        "".join(
                            cmap.get(raw[i : i + width], "?") for i in range(0, len(raw), width)
                        )
                    )
        text = unicodedata.normalize("NFC", "".join(words))
        pages.append(Page(x1 - x0, y1 - y0, " ".join(text.split())))
    return pages


def libreoffice() -> str:
    office = shutil.which("soffice") or shutil.which("libreoffice")
    if office is None:
        pytest.skip("LIBREOFFICE NOT INSTALLED: the report and workbook were not printed")
    return office


def convert(office: str, files: list[Path], folder: Path) -> list[Path]:
    done = subprocess.run(
        [office, "--headless", "--convert-to", "pdf", "--outdir", str(folder), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"HOME": str(folder), "PATH": "/usr/bin:/bin"},
    )
    noise = ("javaldx", "java may not function")  # the machine's, not the files'
    said = [line for line in done.stderr.splitlines() if line and not any(n in line for n in noise)]
    if any("source file could not be loaded" in line for line in said) and any(
        f.suffix == ".docx" for f in files
    ):
        pytest.skip(
            "LIBREOFFICE WRITER NOT INSTALLED (apt-get install libreoffice-writer-nogui): "
            "the report was not printed"
        )
    assert done.returncode == 0 and not said, done.stderr
    out = [folder / f"{f.stem}.pdf" for f in files]
    assert all(p.exists() and p.read_bytes()[:5] == b"%PDF-" for p in out), done.stdout
    return out


def one_sheet(book: Path, title: str, folder: Path) -> Path:
    """A copy of the workbook with only `title`, to print it alone."""
    workbook = load_workbook(book)
    for sheet in list(workbook.worksheets):
        if sheet.title != title:
            workbook.remove(sheet)
    path = folder / f"sheet-{SHEETS.index(title)}.xlsx"
    workbook.save(path)
    return path


A4 = (595.3, 841.9)


@pytest.mark.parametrize("prepared_url", ["sqlite"], indirect=True)  # paper, not database
async def test_libreoffice_prints_both_as_intended(month: App, tmp_path: Path) -> None:
    office = libreoffice()
    files = await files_of(month, tmp_path / "files")
    out = tmp_path / "pdf"
    sheets = [one_sheet(files.workbook, title, tmp_path) for title in SHEETS]
    document, book, *printed = convert(office, [files.document, files.workbook, *sheets], out)
    pages = pdf_pages(document)
    assert 2 <= len(pages) <= 8
    for page in pages:  # A4 portrait
        assert (round(page.width, 1), round(page.height, 1)) == A4
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in pages[0].text
    assert "Số: …/BC-SCT" in pages[0].text and "BÁO CÁO" in pages[0].text
    assert "GIÁM ĐỐC" in pages[-1].text
    whole = pdf_pages(book)
    assert all(p.landscape for p in whole)
    by_sheet = dict(zip(SHEETS, map(pdf_pages, printed), strict=True))
    assert sum(len(p) for p in by_sheet.values()) == len(whole)
    (summary,) = by_sheet["Tổng hợp"]  # the summary on one page
    assert "BIỂU TỔNG HỢP" in summary.text and "95% các cụm công nghiệp" in summary.text
    founded = by_sheet["PL3 CCN thành lập mới"]
    assert len(founded) >= 2
    for number, page in enumerate(founded, start=1):  # one page wide: every page has every
        assert page.landscape  # column, its header repeated, and its number in the footer
        for header in ("STT", "Cụm công nghiệp", "Bước tiếp theo", "Ngày nộp", "Đúng hạn"):
            assert header in page.text, (number, header)
        assert re.search(rf"Trang {number} ?/ ?{len(founded)}\b", page.text), number
    assert "Tổng cộng (42 cụm)" in founded[-1].text
    examples = os.environ.get("CCN_EXAMPLES_DIR")
    if examples:
        folder = Path(examples)
        folder.mkdir(parents=True, exist_ok=True)
        for source in (files.document, files.workbook, document, book, printed[3]):
            shutil.copy(source, folder / source.name)


async def test_tonghop_sends_both_files_built_in_another_process(
    month: App, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/tonghop still sends the summary, the report and its workbook; the month is read and
    both files built in the files' child process (reports.offload) after the update's
    transaction has committed, so someone else's message is answered meanwhile (on SQLite the
    transactions of one process take turns: it used to wait for the whole /tonghop)."""
    caplog.set_level(logging.INFO, logger="reports.offload")
    started = asyncio.Event()
    real_run = offload.run

    async def run(*args: Any, **kwargs: Any) -> Any:
        started.set()
        return await real_run(*args, **kwargs)

    monkeypatch.setattr(offload, "run", run)
    admin = chat_for(month, ADMIN)
    tonghop = asyncio.create_task(admin.say("/tonghop 6/2021"))
    await asyncio.wait_for(started.wait(), 60)
    investor = chat_for(month, INVESTOR_A)
    assert "/baocao" in await investor.say("/trogiup")
    assert not tonghop.done()  # answered while the month was being built
    said = await tonghop
    assert said.startswith("Tổng hợp tháng 06/2021") and "Kế hoạch và thực hiện" in said
    sent = [r.file for r in admin.replies if r.file is not None]
    assert [f.name for f in sent] == ["bao-cao-2021-06.docx", "tong-hop-2021-06.xlsx"]
    assert all(f.stat().st_size > 0 for f in sent)
    assert [p.path.name for r in admin.replies for p in r.photos] == ["tong-hop-2021-06.png"]
    (built,) = [r for r in caplog.records if r.getMessage().startswith("reports.upward.answer:")]
    assert built.__dict__["child_pid"] != os.getpid()


async def test_tonghop_on_a_database_only_this_process_sees(
    month: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database the files' child cannot open (SQLite in memory): the month is read here,
    after the commit, and the files still built in the child; the same answer."""
    admin = chat_for(month, ADMIN)
    from_child = await admin.say("/tonghop 6/2021")
    monkeypatch.setattr(status, "url_of", lambda _sessions: None)
    assert await admin.say("/tonghop 6/2021") == from_child
    assert [r.file.name for r in admin.replies if r.file is not None] == [
        "bao-cao-2021-06.docx",
        "tong-hop-2021-06.xlsx",
    ]


async def test_tonghop_answered_again_after_a_crash_builds_the_files_again(month: App) -> None:
    """The process died after /tonghop's transaction committed, before its answer went out:
    the update, delivered again to a new process, is answered with the summary and both files
    (the work after the commit is kept with the update, handlers.later)."""
    admin = chat_for(month, ADMIN)
    update = admin.incoming(text="/tonghop 6/2021")
    first = await conversation.handle(update, admin.deps)
    for built in [r.file for r in first if r.file is not None]:
        built.unlink()  # nothing of the first answer reached anyone
    fresh = Deps(admin.deps.sessions, admin.deps.config, admin.deps.clock)  # a new process
    again = await conversation.handle(update, fresh)
    assert [r.text.splitlines()[0] for r in again if r.text] == ["Tổng hợp tháng 06/2021"]
    sent = [r.file for r in again if r.file is not None]
    assert [f.name for f in sent] == ["bao-cao-2021-06.docx", "tong-hop-2021-06.xlsx"]
    assert all(f.exists() for f in sent)
    assert await conversation.handle(update, fresh) == []  # this process answered it


def parts(path: Path) -> dict[str, bytes]:
    """A DOCX's or an XLSX's parts, without the moments it was written at (the document's
    properties say when it was created and saved)."""
    with zipfile.ZipFile(path) as archive:
        return {
            name: re.sub(
                rb"<dcterms:(created|modified)\b[^>]*>[^<]*</dcterms:\1>", b"", archive.read(name)
            )
            for name in archive.namelist()
        }


async def test_the_child_builds_the_same_files_as_this_process(month: App, tmp_path: Path) -> None:
    """Built in the child from the pickled month, or here from the month itself (as `ccn-bot
    export` does), the files are the same, part by part."""
    calendar = month.deps().calendar
    async with month.sessions() as session:
        summary = await summarise(session, JUNE, calendar)
        read = await upward.read(session, summary, calendar, NOW)
    here = upward.write(read, tmp_path / "here")
    done = await offload.measured(upward.write, read, tmp_path / "child")
    assert done.pid != os.getpid()
    assert parts(done.value.document) == parts(here.document)
    assert parts(done.value.workbook) == parts(here.workbook)


async def test_the_chart_drawn_in_the_child_is_the_one_drawn_here(
    month: App, tmp_path: Path
) -> None:
    """The chart is drawn in the child from the summary's figures only (its slots and answers,
    rows of the store, stay here): the same picture as from the whole summary."""
    summary = await june(month)
    here = chart.render(summary, tmp_path / "here.png")
    there = await upward.chart(summary, tmp_path / "child.png")
    assert there.read_bytes() == here.read_bytes()


def reaped(pid: int) -> bool:
    """The process is gone and waited for (a zombie keeps its /proc entry)."""
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not Path(f"/proc/{pid}").exists()


async def test_a_child_that_dies_fails_one_build_and_none_is_left_behind() -> None:
    """The child dying (out of memory, killed) fails the build it was running; the next build
    gets a new child; the dead one and, at shutdown, the last one are reaped, not zombies."""
    first = await offload.measured(os.getpid)
    assert first.value == first.pid != os.getpid()
    with pytest.raises(offload.BrokenProcessPool):
        await offload.run(os._exit, 1)
    assert reaped(first.pid)
    again = await offload.measured(os.getpid)
    assert again.value == again.pid not in (first.pid, os.getpid())
    await offload.aclose()  # the bot's shutdown (bot/app.py, serve)
    assert reaped(again.pid)


async def test_a_child_left_idle_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unused for IDLE_SECONDS, the child exits and is reaped (it holds 150–200 MB); the next
    build starts another."""
    monkeypatch.setattr(offload, "IDLE_SECONDS", 0.2)
    first = await offload.measured(os.getpid)
    await asyncio.sleep(0.5)
    assert reaped(first.pid)
    again = await offload.measured(os.getpid)
    assert again.pid != first.pid
    await offload.aclose()
    assert reaped(again.pid)


async def test_month_with_nothing_reported(app: App, tmp_path: Path) -> None:
    """No one invited, nothing reported: the files still build, and say there is nothing."""
    files = await files_of(app, tmp_path)
    text, rows = document_text(files.document)
    assert "Tháng 6/2021 chưa có đơn vị nào được giao báo cáo qua hệ thống." in text
    assert "chưa có cụm nào báo cáo đã khởi công" in text
    row = next(r for r in rows if len(r) == 5 and r[1].startswith("Khởi công xây dựng hạ tầng"))
    assert row[2:4] == ["43 cụm", "0 cụm"]
    book = load_workbook(files.workbook)
    assert book["Chưa báo cáo"].cell(HEADER_ROW + 1, 2).value == "Tổng cộng (0 báo cáo)"
