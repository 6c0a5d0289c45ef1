"""Photos are decoded in a child process as shipped (PHOTO_PROCESSES=1, store.images.Inspector):
the bot's interpreter keeps answering everyone else meanwhile, and a decoder that dies takes
only its own process with it. The rest of the suite decodes in a thread (the `app` fixture's
default), which must give the same answers. Both the photos' and the month's files' child
processes (reports.offload) end with the bot."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import App
from handlers.context import Deps
from store.children import NICENESS
from store.images import Inspector, PhotoRejected, inspect
from store.models import Report, ReportPhoto
from testing.crashing import decoder_crash
from tests.dialog import IMAGES, play
from tests.test_dialogs import FOUNDED_JUNE, investor
from tests.test_security_photos import noisy_jpeg

MAX_BYTES = 10 * 1024 * 1024


@pytest.fixture
async def inspector() -> AsyncIterator[Inspector]:
    shipped = Inspector(1)
    try:
        yield shipped
    finally:
        shipped.close()


def _children() -> set[int]:
    """Process ids of children started in this test (other tests' may live on beside them)."""
    return {
        child.pid
        for child in multiprocessing.active_children()
        if child.pid is not None and child.pid not in _OTHERS
    }


_OTHERS: set[int] = set()


@pytest.fixture(autouse=True)
def _others() -> None:
    _OTHERS.clear()
    _OTHERS.update(c.pid for c in multiprocessing.active_children() if c.pid is not None)


async def test_a_photo_read_in_a_child_process_is_read_as_in_the_bot(
    inspector: Inspector,
) -> None:
    data = noisy_jpeg()
    assert not _children()
    there = await inspector.inspect(data, MAX_BYTES)
    assert _children(), "no child process did the decoding"
    assert there == inspect(data, MAX_BYTES)


async def test_a_refusal_comes_back_with_its_reason(inspector: Inspector) -> None:
    with pytest.raises(PhotoRejected) as refused:
        await inspector.inspect(IMAGES["fake.jpg"][0], MAX_BYTES)
    assert refused.value.reason == "not_image"
    with pytest.raises(PhotoRejected) as refused:
        await inspector.inspect(noisy_jpeg(), 1000)
    assert refused.value.reason == "too_large"


async def test_a_killed_decoding_process_is_replaced_and_the_photo_read(
    inspector: Inspector,
) -> None:
    data = noisy_jpeg()
    await inspector.inspect(data, MAX_BYTES)
    (child,) = _children()
    os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while child in _children() and time.monotonic() < deadline:
        time.sleep(0.05)
    info = await inspector.inspect(data, MAX_BYTES)
    assert info.width == 800
    assert _children() - {child}, "no new process decoded the photo"


async def test_a_whole_report_with_photos_decoded_aside(
    deps: Deps, app: App, inspector: Inspector
) -> None:
    """The founded cluster's June report, word for word as with the thread: two photos kept
    (one sent as a file), the same one twice counted once, a PDF named .jpg refused."""
    aside = dataclasses.replace(deps, config=dataclasses.replace(deps.config, inspector=inspector))
    chat = await investor(aside)
    await play(chat, FOUNDED_JUNE)
    assert _children()
    async with app.sessions() as session:
        report = await session.scalar(select(Report))
        assert report is not None
        photos = await session.scalars(
            select(ReportPhoto).where(ReportPhoto.report_id == report.id)
        )
        assert len(photos.all()) == 2


async def test_the_decoding_process_is_started_before_the_first_photo(
    inspector: Inspector,
) -> None:
    """`ccn-bot run` warms it at its start (bot.app.serve): the first photo of a rush does
    not wait for a new interpreter to load Pillow and the hash."""
    await Inspector(0).warm()
    assert not _children()
    await inspector.warm()
    (child,) = _children()
    await inspector.inspect(noisy_jpeg(), MAX_BYTES)
    assert _children() == {child}


async def test_the_decoding_process_gives_way_to_the_bot(inspector: Inspector) -> None:
    """Its CPU priority is lower than the bot's: when everyone sends a photo at once, the event
    loop (every other chat's answer) and the database come first."""
    await inspector.warm()
    (child,) = _children()
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, child) == min(19, ours + NICENESS)


# each holds a child process and prints its pid
_HOLDERS = {
    "photos": (
        "from store.images import Inspector\n"
        "async def child():\n"
        "    inspector = Inspector(1)\n"
        "    await inspector.warm()\n"
        "    return [c.pid for c in multiprocessing.active_children()][0]\n"
    ),
    "month's files": (
        "from reports import offload\n"
        "async def child():\n"
        "    return (await offload.measured(os.getpid)).value\n"
    ),
}


@pytest.mark.parametrize("holder", sorted(_HOLDERS))
def test_a_child_process_ends_with_a_killed_bot(holder: str, tmp_path: Path) -> None:
    """kill -9 of the bot leaves neither the photos' nor the month's files' process behind."""
    script = tmp_path / "bot.py"
    script.write_text(
        "import asyncio, multiprocessing, os\n" + _HOLDERS[holder] + "async def main():\n"
        "    print(await child(), flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "if __name__ == '__main__':\n"
        "    asyncio.run(main())\n"
    )
    root = Path(__file__).resolve().parents[1]
    bot = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert bot.stdout is not None
        child = int(bot.stdout.readline())
        os.kill(child, 0)  # alive
    finally:
        bot.kill()
        bot.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    raise AssertionError(f"the {holder} process outlived the bot")


class _Crashing(Inspector):
    read = staticmethod(decoder_crash)


async def test_a_photo_that_crashes_the_decoder_is_refused_and_the_bot_goes_on() -> None:
    crashing = _Crashing(1)
    try:
        with pytest.raises(PhotoRejected) as refused:
            await crashing.inspect(noisy_jpeg(), MAX_BYTES)
        assert refused.value.reason == "not_image"
        crashing.read = inspect  # the next photo, a good one
        assert (await crashing.inspect(noisy_jpeg(), MAX_BYTES)).width == 800
    finally:
        crashing.close()
