from __future__ import annotations

from decimal import Decimal

import pytest

from domain import i18n
from domain.text import cluster_slug, fold, parse_decimal, parse_month, parse_percent, parse_quarter


def test_fold_strips_accents_and_d() -> None:
    assert fold("  Cụm CN  Đại Thắng ") == "cum cn dai thang"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Cụm công nghiệp làng nghề Đại Thắng", "dai-thang"),
        ("Cụm công nghiệp Phú Thị - GD2", "phu-thi-gd2"),
        ("Cụm công nghiệp làng nghề Chàng Sơn - Giai đoạn 2", "chang-son-gd2"),
        ("Cụm CN Quất Động 2 (mở rộng)", "quat-dong-2-mo-rong"),
        ("CCN Phú Túc", "phu-tuc"),
    ],
)
def test_cluster_slug(name: str, code: str) -> None:
    assert cluster_slug(name) == code


@pytest.mark.parametrize("typed", ["68,45", "68.45", "68,45%", "68,45 %", " 68.45% ", "68,45%."])
def test_percent_as_people_type_it(typed: str) -> None:
    assert parse_percent(typed) == Decimal("68.45")


@pytest.mark.parametrize("typed", ["", "abc", "101", "-1", "nan", "1,2,3"])
def test_bad_percent(typed: str) -> None:
    with pytest.raises(ValueError):
        parse_percent(typed)


def test_vietnamese_grouping() -> None:
    assert parse_decimal("1.234,5") == Decimal("1234.5")


@pytest.mark.parametrize(
    "typed", ["2021-03", "2021-3", "3/2021", "Tháng 3/2021", "tháng 03 / 2021"]
)
def test_month(typed: str) -> None:
    assert parse_month(typed) == "2021-03"


@pytest.mark.parametrize("typed", ["13/2021", "2021", "March"])
def test_bad_month(typed: str) -> None:
    with pytest.raises(ValueError):
        parse_month(typed)


@pytest.mark.parametrize("typed", ["2021-Q4", "2021-q4", "IV/2021", "Quý IV/2021", "quý 4/2021"])
def test_quarter(typed: str) -> None:
    assert parse_quarter(typed) == "2021-Q4"


def test_written_the_vietnamese_way() -> None:
    assert i18n.percent(Decimal("68.45")) == "68,45 %"
    assert i18n.percent(Decimal("68.45"), "en") == "68.45%"
    assert i18n.number(1234567.5) == "1.234.567,5"
    assert i18n.quarter("2021-Q4") == "Quý IV/2021"
    assert i18n.month("2021-03") == "03/2021"
