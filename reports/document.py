"""The month's summary as a Word document (DOCX): a type every messenger takes, Zalo included,
beside the XLSX workbook. The text is the summary the chat shows, with the chart."""

from __future__ import annotations

from pathlib import Path

from docx import Document
from docx.shared import Cm, Pt


def summary_document(title: str, text: str, chart: Path | None, path: Path) -> Path:
    document = Document()
    style = document.styles["Normal"]
    style.font.name = "Times New Roman"
    style.font.size = Pt(13)
    for section in document.sections:
        section.page_height, section.page_width = Cm(29.7), Cm(21)
        section.left_margin, section.right_margin = Cm(3), Cm(2)
        section.top_margin, section.bottom_margin = Cm(2), Cm(2)
    document.add_heading(title, level=1)
    for line in text.splitlines():
        document.add_paragraph(line)
    if chart is not None and chart.exists():
        document.add_picture(str(chart), width=Cm(16))
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path
