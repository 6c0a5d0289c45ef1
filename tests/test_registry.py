"""The registry files checked against the text of Kế hoạch 68 they were transcribed from."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from domain.text import cluster_slug, fold, parse_decimal

REGISTRY = Path(__file__).parent.parent / "store" / "registry"
SEED = (REGISTRY / "ke-hoach-68.txt").read_text(encoding="utf-8").splitlines()


def rows(name: str) -> list[dict[str, str]]:
    with (REGISTRY / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


CLUSTERS = {r["code"]: r for r in rows("clusters.csv")}
TASKS = {int(r["number"]): r for r in rows("tasks.csv")}
TARGETS = {r["code"]: r for r in rows("targets.csv")}


def test_counts_are_what_the_extracted_text_holds() -> None:
    by_kind = Counter(r["kind"] for r in CLUSTERS.values())
    assert by_kind == {
        "operating_complete": 13,  # Phụ lục 2 A: 25 printed, 13 rows in the text
        "operating_incomplete": 22,  # Phụ lục 2 B: the heading is not in the text
        "founded_2018_2020": 42,  # Phụ lục 3: 43 printed, the text is cut in row 42
    }
    assert sorted(TASKS) == list(range(1, 27))
    assert sorted(int(r["number"]) for r in CLUSTERS.values() if r["appendix"] == "3") == list(
        range(1, 43)
    )


def test_every_row_is_on_its_source_line() -> None:
    for row in CLUSTERS.values():
        line = fold(SEED[int(row["source_line"]) - 1])
        assert fold(row["name"]) in line, row["code"]
        if row["investor"]:
            assert fold(row["investor"]) in line, row["code"]
        if row["occupancy_rate"]:
            printed = SEED[int(row["source_line"]) - 1].split("\t")[3]
            assert parse_decimal(printed) == parse_decimal(row["occupancy_rate"]), row["code"]
    for task in TASKS.values():
        assert fold(task["title"][:60]) in fold(SEED[int(task["source_line"]) - 1])


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            "dai-thang",
            {
                "appendix": "3",
                "number": "1",
                "district": "Huyện Phú Xuyên",
                "investor": "Công ty cổ phần Hanel Mirolin",
                "planned_groundbreaking": "2021-03",
                "planned_completion": "2021-Q4",
            },
        ),
        (
            "phu-thi-gd2",
            {
                "number": "6",
                "district": "Huyện Gia Lâm",
                "investor": "Công ty cổ phần Phát triển FUJI Hà Nội",
                "planned_groundbreaking": "2021-09",
                "planned_completion": "",  # that cell is empty in the plan
            },
        ),
        (
            "phu-thinh",
            {"appendix": "2", "section": "A.I", "number": "1", "district": "Thị xã Sơn Tây"},
        ),
        ("binh-phu", {"occupancy_rate": "68.45", "district": "Huyện Thạch Thất"}),
        ("binh-phu-i", {"occupancy_rate": "88.44", "kind": "operating_incomplete"}),
        ("canh-nau", {"occupancy_rate": "71.8"}),
        ("thi-tran-phung", {"investor": "Cty CP ĐT TM Tân Cương", "investor_type": "company"}),
    ],
)
def test_sample_rows_match_the_plan(code: str, expected: dict[str, str]) -> None:
    row = CLUSTERS[code]
    assert {k: row[k] for k in expected} == expected


def test_codes_are_unique_slugs_of_the_names() -> None:
    for code, row in CLUSTERS.items():
        assert code.startswith(cluster_slug(row["name"])), code
    assert {"dai-thang", "phu-thi-gd2", "chang-son-gd2", "quat-dong-2-mo-rong"} <= set(CLUSTERS)


def test_tasks_carry_lead_and_due_time() -> None:
    assert TASKS[1]["due_kind"] == "quarter" and TASKS[1]["due_value"] == "2021-Q2"
    assert TASKS[9]["lead_orgs"] == "Sở Kế hoạch và Đầu tư"
    assert (TASKS[9]["due_kind"], TASKS[9]["due_value"]) == ("month", "2021-04")
    assert TASKS[21]["due_kind"] == "monthly"
    assert TASKS[5]["due_kind"] == "year"
    assert (TASKS[15]["due_kind"], TASKS[15]["due_value"]) == ("from_quarter", "2021-Q3")
    assert TASKS[26]["due_kind"] == "annually"
    assert "Trung tâm Xúc tiến" in TASKS[5]["partners"] and "UBND các huyện" in TASKS[5]["partners"]


def test_targets_of_the_plan() -> None:
    quarterly = [int(TARGETS[f"groundbreakings_q{q}"]["value_min"]) for q in range(1, 5)]
    assert quarterly == [1, 23, 13, 6]
    assert sum(quarterly) == int(TARGETS["groundbreakings"]["value_min"]) == 43
    assert TARGETS["infrastructure_completed"]["value_min"] == "20"
    assert TARGETS["infrastructure_completed"]["value_max"] == ""
    assert (TARGETS["new_clusters"]["value_min"], TARGETS["new_clusters"]["value_max"]) == (
        "10",
        "15",
    )
    assert TARGETS["wastewater_new"]["value_min"] == "100"
    assert TARGETS["wastewater_operating"]["value_min"] == "95"


def test_every_target_label_is_the_plans_words() -> None:
    """A target's label is one whole clause of its line of the plan, word for word."""
    for code, target in TARGETS.items():
        line = SEED[int(target["source_line"]) - 1].lstrip("-+ ").rstrip(";.")
        clauses = [c.strip().rstrip(".") for c in line.split(";")]
        assert target["label"] in clauses, (code, target["label"], clauses)


def test_what_is_missing_is_marked() -> None:
    gaps = rows("gaps.csv")
    assert any(g["appendix"] == "3" and "cut" in g["note"] for g in gaps)
    assert any(g["appendix"] == "2" and g["numbers"] == "2-3" for g in gaps)
    assert "truncated" in CLUSTERS["duong-lieu-giai"]["missing"]


DUTIES = rows("duties.csv")
SECTION_III = range(100, 237)  # the lines of "III. TỔ CHỨC THỰC HIỆN" up to section IV


def clauses(line: int) -> list[str]:
    text = SEED[line - 1].lstrip("-+ ").rstrip(";.")
    return [c.strip().rstrip(".") for c in text.split(";")]


def test_every_duty_is_the_plans_words() -> None:
    """A duty's text is one or more whole clauses of its line of section III, word for word,
    in their order; its `who` is its section's heading."""
    for duty in DUTIES:
        line = int(duty["source_line"])
        assert line in SECTION_III, duty["code"]
        parts = clauses(line)
        runs = {
            "; ".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)
        }
        assert duty["text"] in runs, (duty["code"], duty["text"], parts)
        number = duty["section"].removeprefix("III.")
        heading = next(SEED[n - 1] for n in SECTION_III if SEED[n - 1].startswith(f"{number}. "))
        assert heading.removeprefix(f"{number}. ").rstrip(":") == duty["who"], duty["code"]


def test_every_line_of_section_iii_is_a_duty_asked_or_covered() -> None:
    """Nothing of section III is forgotten: each of its lines is a duty (a heading or a
    lead-in ending in ':' is not); a duty is asked unless a Phụ lục 1 task its organisations
    lead says the same, or it is the report itself or the appendices' tasks."""
    duty_lines = {int(d["source_line"]) for d in DUTIES}
    for n in SECTION_III:
        text = SEED[n - 1].strip()
        if text and not text.endswith(":"):
            assert n in duty_lines, (n, text[:60])
    assert len({d["code"] for d in DUTIES}) == len(DUTIES)
    for duty in DUTIES:
        covered = duty["covered_by"]
        if covered in ("", "report", "appendices"):
            continue
        names = {fold(n) for n in duty["orgs"].split("|") if n}
        groups = {g for g in duty["groups"].split("|") if g}
        for number in covered.split("|"):
            task = TASKS[int(number)]
            leads = {fold(n) for n in task["lead_orgs"].split("|") if n}
            lead_groups = set(task["lead_groups"].split("|"))
            by_name = names and (names <= leads or "all_departments" in lead_groups)
            assert by_name or (groups and groups <= lead_groups), (duty["code"], number)


def test_partner_only_departments_have_duties_asked() -> None:
    asked = [d for d in DUTIES if not d["covered_by"]]
    of = {
        n: [d["code"] for d in asked if n in d["orgs"].split("|")]
        for n in ("Sở Tài chính", "Sở Xây dựng", "Sở Tư pháp")
    }
    assert of == {
        "Sở Tài chính": ["d5-1", "d5-2", "d5-3", "d5-4", "d5-5"],
        "Sở Xây dựng": ["d7-2", "d7-3"],
        "Sở Tư pháp": ["d6-1"],
    }
    districts = [d["code"] for d in asked if d["groups"] == "all_districts"]
    assert districts == ["d8-1", "d8-6", "d8-9"]  # the rest is Phụ lục 1's tasks 17–22
    assert not any(d["groups"] == "all_investors" for d in asked)  # tasks 23–26, per cluster
