"""Finding a cluster the way people type its name."""

from __future__ import annotations

import pytest

from bot.app import App
from store.clusters import all_clusters, search


@pytest.fixture
async def clusters(app: App) -> list:  # type: ignore[type-arg]
    async with app.sessions() as session:
        return await all_clusters(session)


def codes(found: list) -> list[str]:  # type: ignore[type-arg]
    return [m.cluster.code for m in found]


@pytest.mark.parametrize(
    "typed", ["dai thang", "Đại Thắng", "ĐẠI THẮNG", "CCN Đại Thắng", "thang dai", "dai-thang"]
)
async def test_exact_whatever_the_accents_case_and_order(clusters: list, typed: str) -> None:  # type: ignore[type-arg]
    found = search(clusters, typed)
    assert found[0].cluster.code == "dai-thang" and found[0].exact


@pytest.mark.parametrize("typed", ["CCN Phú Túc", "phu tuc", "Cụm công nghiệp làng nghề Phú Túc"])
async def test_phu_tuc(clusters: list, typed: str) -> None:  # type: ignore[type-arg]
    assert codes(search(clusters, typed))[0] == "phu-tuc"


@pytest.mark.parametrize("typed", ["dai thnag", "dai tang", "Đại Thắg"])
async def test_near_misses_rank_first(clusters: list, typed: str) -> None:  # type: ignore[type-arg]
    found = search(clusters, typed)
    assert found and found[0].cluster.code == "dai-thang"
    assert not found[0].exact


async def test_several_matches_are_all_offered(clusters: list) -> None:  # type: ignore[type-arg]
    found = codes(search(clusters, "binh phu"))
    assert found[0] == "binh-phu"
    assert {"binh-phu-i", "binh-phu-i-gd2"} <= set(found)


async def test_nothing_like_it(clusters: list) -> None:  # type: ignore[type-arg]
    assert search(clusters, "xyz qwerty") == []
    assert search(clusters, "   ") == []
