"""Reading and writing flat tables as CSV (UTF-8) or XLSX, with the line number of every row.

openpyxl (~0.3 s of CPU to import, numpy with it) is imported only where an XLSX file is read
or written: the running bot reads only the registry's CSV files."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


class TableFormatError(ValueError):
    """The file is not a table we can read (wrong suffix, not UTF-8, not a workbook)."""


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[tuple[int, dict[str, str]]]  # (line number in the file, column → text)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_table(path: Path) -> Table:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise TableFormatError("not UTF-8") from exc
        reader = csv.reader(io.StringIO(text, newline=""))
        header: list[str] | None = None
        rows: list[tuple[int, dict[str, str]]] = []
        start = 1
        for fields in reader:
            if header is None:
                header = [h.strip() for h in fields]
                start = reader.line_num + 1
                continue
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in fields):
                continue
            padded = [*fields, *[""] * (len(header) - len(fields))]
            rows.append((line, {h: padded[i].strip() for i, h in enumerate(header)}))
        return Table(header or [], rows)
    if suffix == ".xlsx":
        from openpyxl import load_workbook

        try:
            workbook = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises several unrelated types
            raise TableFormatError("not an XLSX workbook") from exc
        sheet = workbook.worksheets[0]
        values = list(sheet.iter_rows(values_only=True))
        workbook.close()
        if not values:
            return Table([], [])
        header = [_cell(v) for v in values[0]]
        rows = []
        for index, record in enumerate(values[1:], start=2):
            cells = [_cell(v) for v in record]
            if not any(cells):
                continue
            padded = [*cells, *[""] * (len(header) - len(cells))]
            rows.append((index, {h: padded[i] for i, h in enumerate(header) if h}))
        return Table(header, rows)
    raise TableFormatError(f"unsupported file type {suffix or '(none)'}")


def write_table(
    path: Path, header: Sequence[str], rows: Iterable[dict[str, str | int | float]]
) -> None:
    """Write rows; numbers stay numbers in XLSX so they can be summed in Excel."""
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(header), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return
    if suffix == ".xlsx":
        from openpyxl import Workbook

        workbook = Workbook()
        sheet = workbook.active
        assert sheet is not None
        sheet.title = "clusters"
        sheet.append(list(header))
        for row in rows:
            sheet.append([row.get(h, "") for h in header])
        sheet.freeze_panes = "A2"
        workbook.save(path)
        return
    raise TableFormatError(f"unsupported file type {suffix or '(none)'}")
