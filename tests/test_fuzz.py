"""A fuzzer of the conversation: an invited investor, a district officer and an admin send
random commands, texts, forged button payloads, taps of the buttons offered, photos and
locations, in any order, through `conversation.handle` on the real store (SQLite and
PostgreSQL). After every message: nothing failed (no apology, no ERROR log record), every reply
has words, and every draft answer and submitted value is one its question takes. At the end of
each example every open draft can still be submitted (the rest answered validly) or paused.

Bounded and deterministic under CI (`derandomize`); FUZZ_EXAMPLES and FUZZ_STEPS run it longer
locally. The store is migrated once per database and each example uses fresh chats."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import os
import re
from collections import Counter
from collections.abc import Coroutine
from datetime import date, datetime
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)
from PIL import Image
from sqlalchemy import select

from domain.calendar import Period
from domain.forms import Item, Question, expand
from domain.roles import Role
from handlers import reporting
from handlers.context import Deps
from handlers.port import Attachment, Incoming, Reply
from store.access import person_for
from store.forms import load_forms
from store.models import Cluster, PaperReceipt, Report, ReportDraft
from tests.dialog import Chat, Clock, finish, play
from tests.test_dialogs import HANOI, investor, invite, invited_admin

T = TypeVar("T")

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
STEPS = int(os.environ.get("FUZZ_STEPS", "30"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    derandomize=bool(os.environ.get("CI")) or "FUZZ_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
MARKERS = {  # what the statistics count (pytest --hypothesis-show-statistics)
    "kiểm tra lại báo cáo": "summary shown",
    "Đã nhận báo cáo": "report submitted",
    "Xin lỗi, lựa chọn này": "payload refused",
    "giảm từ": "figure went down",
    "Gửi thêm hoặc bấm Xong": "photos added",
    "ảnh sẽ được đưa vào báo cáo": "photos kept",
    "không phải ảnh": "photo refused",
    "Tiếp tục bản nháp": "draft resumed",
    "Báo cáo tháng": "draft opened",
    "Đã ghi nhận: gửi bằng văn bản": "paper claimed",
    "Đã lưu vị trí": "location saved",
}
SEEN: Counter[str] = Counter()
QUESTION = re.compile(r"^\(\d+/\d+\) ", re.MULTILINE)
APOLOGIES = ("Xin lỗi, có lỗi xảy ra", "Sorry, something went wrong")
MOMENTS = [  # the clock of an example: in a window, at a deadline's edge, December, January
    datetime(2021, 6, 10, 9, 0, tzinfo=HANOI),
    datetime(2021, 6, 24, 23, 59, tzinfo=HANOI),
    datetime(2021, 6, 25, 0, 0, tzinfo=HANOI),
    datetime(2021, 12, 19, 8, 0, tzinfo=HANOI),
    datetime(2022, 1, 2, 7, 30, tzinfo=HANOI),
]
INVESTOR_CLUSTERS = [["dai-thang"], ["binh-phu"], ["dai-thang", "phu-tuc"]]
CODES = ["dai-thang", "binh-phu", "phu-tuc", "khong-co", "", "DAI-THANG", "dai thang"]

# --- what people send -----------------------------------------------------------------------


def choose(*lines: str) -> st.SearchStrategy[str]:
    """One of the `|`-separated words."""
    return st.sampled_from([w for line in lines for w in line.split("|")])


_forms = load_forms()
QIDS = sorted(
    {q.id for f in _forms.values() for q in (*f.questions, *f.each_item)}
    | {f"t14.{q.id}" for q in _forms["tasks"].each_item}
    | {"t1.status", "s-dai-thang-3.status", "_location", "_items", ""}
)
VALUES = st.one_of(
    st.sampled_from(
        ["yes", "no", "maybe", "0", "1", "2", "3", "9", "-1", "٣", "²", " 1", "+1", "", "1:2"]
    ),
    st.integers(-5, 10**25).map(str),
    st.text(max_size=12),
)
PERIODS = st.one_of(
    st.sampled_from(["2021-06", "2021-05", "2020-12", "2099-12", "2021-13", "2021-6", "2021-07"]),
    st.builds(lambda y, m: f"{y:04d}-{m:02d}", st.integers(1990, 2110), st.integers(0, 13)),
    st.text(max_size=10),
)
SUBJECTS = st.sampled_from(
    ["cluster:dai-thang", "cluster:binh-phu", "cluster:phu-tuc", "org:1", "org:99", "cluster:"]
)
PAYLOADS = st.one_of(
    st.builds(
        lambda a, q, v: f"{a}:{q}:{v}",
        st.sampled_from(["a", "back"]),
        st.sampled_from(QIDS),
        VALUES,
    ),
    st.builds(
        lambda a, q: f"{a}:{q}", st.sampled_from(["keep", "skip", "done"]), st.sampled_from(QIDS)
    ),
    st.builds("edit:{}".format, VALUES),
    st.just("submit"),
    st.builds("subject:{}".format, VALUES),
    st.builds(lambda s, p: f"report:{s}:{p}", SUBJECTS, PERIODS),
    st.builds("paper:{}".format, PERIODS),
    st.builds(lambda a, n: f"{a}:{n}", st.sampled_from(["paperok", "paperno"]), VALUES),
    st.builds("missing:{}".format, PERIODS),
    st.builds("cluster:{}".format, st.one_of(st.sampled_from(CODES), st.text(max_size=30))),
    st.builds("lang:{}".format, st.sampled_from(["vi", "en", "fr", "", "vi:x"])),
    st.text(max_size=64),
)
NUMBERS = st.one_of(
    choose(
        "68,45|1.234,5|1e5|NaN|-0|45 %|٣٤|１２|10⁵|0,00001",
        "9999999999999999999999999999999999999999|1_000| 12 |12.|.5|+5|--5|100",
        "100,00|-3|0|60|40",
    ),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.floats().map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.builds(lambda n: f"{n:,}".replace(",", "."), st.integers(0, 10**9)),
)
WORDS = choose(
    "có|không|co|khong|ok|xong|done|gửi|gui bao cao|submit|1|2|a|b",
    "Không thay đổi|bỏ qua|Đại Thắng|dai thnag|phu tuc|15/6|2021-06-15",
    "32/13|29/2/2021|1/1/99|31/12/2100|6/2021|Đang triển khai",
)
ODD = st.sampled_from(
    ["", " ", "\n", "\x00", "\x1b[31m", "\r\n", "\t", "\u200b", "\ufeff", "a\x00b", "\u202e"]
)
TEXTS = st.one_of(
    NUMBERS,
    WORDS,
    ODD,
    st.text(max_size=40),
    st.builds(lambda c, n: c * n, st.characters(), st.integers(1000, 4096)),
)
MONTHS = st.one_of(
    st.sampled_from(
        ["5/2021", "6/2021", "13/2021", "7/2021", "2021-05", "tháng 5/2021", "12/2020"]
    ),
    st.sampled_from(["1/2000", "6/2100", "0/2021", "5/21", "abc", "", "２/２０２１"]),
    st.builds(lambda m, y: f"{m}/{y}", st.integers(-1, 14), st.integers(1990, 2200)),
)
COMMANDS = st.one_of(
    choose(
        "/baocao|/huy|/trogiup|/help|/report|/cancel|/tinhhinh|/status",
        "/chuabaocao|/ngonngu|/lienket|/nguoidung|/khongco|/baocao@ccn_bot",
        "/start|/moi|/vanban|/thuhoi|/HUY|/baocao  ",
    ),
    st.builds("/baocao {}".format, MONTHS),
    st.builds("/tinhhinh {}".format, st.one_of(WORDS, st.text(max_size=20))),
    st.builds(lambda m, d: f"/chuabaocao {m} {d}", MONTHS, st.sampled_from(["", "Phú Xuyên", "X"])),
    st.builds("/vanban {} {} {}".format, st.sampled_from(CODES), MONTHS, TEXTS),
    st.builds(
        "/moi {}".format,
        st.sampled_from(["investor dai-thang", "investor khong-co", "district Huyện X", "foo"]),
    ),
    st.builds("/start {}".format, st.text(max_size=20)),
    # withdrawing a real person would end the example's conversation: numbers nobody has
    st.builds("/thuhoi {}".format, st.sampled_from(["abc", "#", "0", "#0", "-1"])),
)
IMAGES = st.builds(
    lambda color, w, h, fmt: _image(color, (w, h), fmt),
    st.sampled_from(["red", "blue", "green", "white"]),
    st.integers(1, 48),
    st.integers(1, 48),
    st.sampled_from(["JPEG", "PNG"]),
)
FILES = st.one_of(IMAGES, IMAGES, st.binary(max_size=64), st.just(b""))


def _image(color: str, size: tuple[int, int], fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


def _attachment(data: bytes, document: bool) -> Attachment:
    async def fetch() -> bytes:
        return data

    return Attachment("document" if document else "photo", fetch, file_name="x.jpg")


LABELS = {
    text: q.id for f in _forms.values() for q in f.questions for text in (q.label.vi, q.label.en)
}
_ASKED = re.compile(r"^\(\d+/\d+\) (.+)$", re.MULTILINE)


def _asked(chat: Chat) -> list[str]:
    """The ids of the question the bot asked last: from its buttons, or from its label."""
    found = {
        parts[1]
        for b in chat.buttons
        if len(parts := b.payload.split(":")) >= 2 and parts[0] in ("a", "keep", "skip", "done")
    }
    found |= {LABELS[m] for m in _ASKED.findall(chat.text) if m in LABELS}
    return sorted(found)


# --- what the store may hold ----------------------------------------------------------------


def takes(question: Question, value: object, today: date) -> bool:
    """An answer the question takes, checked apart from the handlers' own check."""
    if value is None:
        return not question.required
    if not isinstance(value, str):
        return False
    if question.type == "yesno":
        return value in ("yes", "no")
    if question.type == "choice":
        return value in {c.value for c in question.choices}
    return reporting.valid_answer(question, value, today)


def problems(form: str, answers: dict[str, Any], today: date, submitted: bool) -> list[str]:
    """What is wrong with stored answers: an unknown key, a value its question does not take,
    and in a submitted report an applicable required question left without an answer."""
    items = answers.get(reporting.ITEMS_KEY, [])
    known = {q.id: q for q in expand(_forms[form], [Item(k, t) for k, t in items])}
    found = []
    for qid, entry in answers.items():
        if qid in (reporting.ITEMS_KEY, reporting.STEPS_KEY):
            continue
        value = entry.get("v") if isinstance(entry, dict) else entry
        if qid == reporting.LOCATION_KEY:
            if not reporting.valid_where(value):
                found.append(f"location {value!r}")
        elif qid not in known or not isinstance(entry, dict):
            found.append(f"unknown {qid}={entry!r}")
        elif known[qid].type == "photos":
            if value is not None and not str(value).isdigit():
                found.append(f"{qid}={value!r}")
        elif not takes(known[qid], value, today):
            found.append(f"{qid}={value!r}")
    if submitted:
        draft = ReportDraft(form=form, answers=answers)
        for q in reporting.applicable(draft):
            if q.required and q.type != "photos" and (answers.get(q.id) or {}).get("v") is None:
                found.append(f"{q.id} missing")
    return found


class Errors(logging.Handler):
    """ERROR records from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# --- the machine ----------------------------------------------------------------------------

_chat_ids = itertools.count(900_000)
USERS = ("investor", "district", "admin")


class Conversations(RuleBasedStateMachine):
    deps: ClassVar[Deps]
    clock: ClassVar[Clock]
    loop: ClassVar[asyncio.AbstractEventLoop]
    errors: ClassVar[Errors]
    names: ClassVar[dict[str, str]]  # cluster code → name

    def __init__(self) -> None:
        super().__init__()
        self.chats: dict[str, Chat] = {}
        self.people: dict[str, int] = {}
        self.finale: dict[str, bool] = {}  # True: submit the open draft at the end; else pause
        self.clean = False

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    @initialize(
        moment=st.sampled_from(MOMENTS),
        clusters=st.sampled_from(INVESTOR_CLUSTERS),
        finale=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    )
    def setup(self, moment: datetime, clusters: list[str], finale: tuple[bool, bool, bool]) -> None:
        self.clock.now = moment
        self.errors.records.clear()
        scopes: dict[str, tuple[Role, dict[str, object]]] = {
            "investor": (Role.INVESTOR, {"clusters": clusters}),
            "district": (Role.DISTRICT, {"district": "Huyện Phú Xuyên"}),
            "admin": (Role.ADMIN, {}),
        }
        for user, (role, scope) in scopes.items():
            chat = Chat(self.deps, chat_id=str(next(_chat_ids)), channel="telegram")
            token = self.run(invite(self.deps, role, **scope))
            self.send(user, chat, chat.incoming(text=f"/start {token}"))
            self.chats[user] = chat
        self.people = self.run(self._people())
        self.finale = dict(zip(USERS, finale, strict=True))
        self.clean = True

    async def _people(self) -> dict[str, int]:
        async with self.deps.sessions() as session:
            out = {}
            for user, chat in self.chats.items():
                person = await person_for(session, chat.channel, chat.chat_id)
                assert person is not None, chat.log()
                out[user] = person.id
            return out

    # one message, and what must hold after it

    def send(self, user: str, chat: Chat, incoming: Incoming) -> list[Reply]:
        self.clean = False
        self.run(chat.send(incoming))
        replies = chat.replies
        said = incoming.text or incoming.payload or incoming.location or "📷"
        where = f"{user} sent {said!r}\n{chat.log()}"
        assert replies, "no reply: " + where
        for reply in replies:
            assert reply.text.strip(), "a reply without words: " + where
            assert not reply.text.startswith(APOLOGIES), where
        assert not self.errors.records, (
            "\n".join(r.getMessage() + "\n" + str(r.exc_text or "") for r in self.errors.records)
            + "\n"
            + where
        )
        for marker, text in MARKERS.items():
            if any(marker in r.text for r in replies):
                SEEN[text] += 1
        if self.people:
            found = self.run(self._stored_problems())
            assert not found, f"{found}\n{where}"
        self.clean = True
        return replies

    async def _stored_problems(self) -> list[str]:
        today = self.clock.now.astimezone(HANOI).date()
        ids = list(self.people.values())
        found = []
        async with self.deps.sessions() as session:
            for draft in await session.scalars(
                select(ReportDraft).where(ReportDraft.person_id.in_(ids))
            ):
                wrong = problems(draft.form, draft.answers, today, False)
                found += [f"draft {draft.id}: {p}" for p in wrong]
            for report in await session.scalars(
                select(Report).where(Report.submitted_by_person_id.in_(ids))
            ):
                found += [
                    f"report {report.reference}: {p}"
                    for p in problems(report.form, report.answers, today, True)
                ]
        return found

    # the rules

    @rule(user=st.sampled_from(USERS), text=COMMANDS)
    def command(self, user: str, text: str) -> None:
        chat = self.chats[user]
        self.send(user, chat, chat.incoming(text=text))

    @rule(user=st.sampled_from(USERS), text=TEXTS)
    def type_text(self, user: str, text: str) -> None:
        chat = self.chats[user]
        self.send(user, chat, chat.incoming(text=text))

    @rule(user=st.sampled_from(USERS), payload=PAYLOADS)
    def forge(self, user: str, payload: str) -> None:
        chat = self.chats[user]
        self.send(user, chat, chat.incoming(payload=payload))

    @rule(
        user=st.sampled_from(["investor", "district"]),
        family=st.sampled_from(["a", "keep", "skip", "done", "back", "edit", "subject"]),
        value=VALUES,
        index=st.integers(0, 30),
    )
    def forge_here(self, user: str, family: str, value: str, index: int) -> None:
        """A forged payload aimed at the question being asked (or its summary number)."""
        chat = self.chats[user]
        here = _asked(chat) or QIDS
        qid = here[index % len(here)]
        if family in ("edit", "subject"):
            payload = f"{family}:{value}"
        elif family in ("keep", "skip", "done"):
            payload = f"{family}:{qid}" + (f":{value}" if index % 5 == 0 else "")
        else:
            payload = f"{family}:{qid}:{value}"
        self.send(user, chat, chat.incoming(payload=payload))

    @rule(user=st.sampled_from(USERS), index=st.integers(0, 30))
    def tap(self, user: str, index: int) -> None:
        """A button the bot offered in its last replies (what is drawn never depends on them,
        so that the store carried over from earlier examples cannot make the draws differ)."""
        chat = self.chats[user]
        if not chat.buttons:
            self.send(user, chat, chat.incoming(text="/baocao"))
            return
        button = chat.buttons[index % len(chat.buttons)]
        self.send(user, chat, chat.incoming(payload=button.payload))

    @rule(user=st.sampled_from(["investor", "district"]), times=st.integers(1, 15))
    def answer_well(self, user: str, times: int) -> None:
        """What a careful person does next, a few times: a button the bot offers, or a value
        that fits; up to the summary."""
        chat = self.chats[user]
        for _ in range(times):
            labels = [b.label for b in chat.buttons]
            if "Gửi báo cáo" in labels:
                return
            if labels:
                self.send(user, chat, chat.incoming(payload=chat.buttons[0].payload))
            elif "lý do" in chat.text:
                self.send(user, chat, chat.incoming(text="Đo đạc lại"))
            elif not QUESTION.search(chat.text):  # no question open: start or resume
                self.send(user, chat, chat.incoming(text="/baocao"))
            else:
                fitting = "01/05/2021" if "ngày" in chat.text else "10"
                self.send(user, chat, chat.incoming(text=fitting))

    @rule(
        user=st.sampled_from(USERS),
        files=st.lists(FILES, min_size=1, max_size=3),
        doc=st.booleans(),
    )
    def photos(self, user: str, files: list[bytes], doc: bool) -> None:
        chat = self.chats[user]
        attachments = tuple(_attachment(f, doc) for f in files)
        group = "album" if len(files) > 1 else None
        self.send(user, chat, chat.incoming(attachments=attachments, media_group_id=group))

    @rule(
        user=st.sampled_from(USERS),
        lat=st.floats(-90, 90, allow_nan=False),
        lon=st.floats(-180, 180, allow_nan=False),
    )
    def location(self, user: str, lat: float, lon: float) -> None:
        chat = self.chats[user]
        self.send(user, chat, chat.incoming(location=(lat, lon)))

    # at the end: every open draft can still be submitted, or paused

    def teardown(self) -> None:
        if not self.clean:
            return  # a rule failed: that is the failure to report
        for user in USERS:
            self.run(self._finish(user))

    async def _finish(self, user: str) -> None:
        chat = self.chats[user]
        await chat.send(chat.incoming(payload="lang:vi"))
        async with self.deps.sessions() as session:
            draft = await session.scalar(
                select(ReportDraft)
                .where(ReportDraft.person_id == self.people[user], ReportDraft.status == "open")
                .order_by(ReportDraft.id.desc())
                .limit(1)
            )
        if not self.finale[user] or draft is None:
            answer = await chat.say("/huy")
            assert "Đã tạm dừng" in answer or "Không có gì để dừng" in answer, chat.log()
            if draft is not None:
                async with self.deps.sessions() as session:
                    kept = await session.get(ReportDraft, draft.id)
                    assert kept is not None and kept.status == "open", chat.log()
                    assert kept.answers == draft.answers, chat.log()
            return
        answer = await chat.say(f"/baocao {Period.parse(draft.period).label()}")
        if "cho cụm nào" in answer:
            await chat.tap(self.names[draft.subject.ref])
        assert "Tiếp tục bản nháp" in chat.text, chat.log()
        await finish(chat)
        answer = await chat.tap("Gửi báo cáo")
        assert "Đã nhận báo cáo" in answer, chat.log()
        assert not await self._stored_problems(), chat.log()
        assert not self.errors.records, chat.log()


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
async def test_conversation_fuzz(deps: Deps, clock: Clock) -> None:
    loop = asyncio.get_running_loop()
    SEEN.clear()
    async with deps.sessions() as session:
        names = {c.code: c.name for c in await session.scalars(select(Cluster))}
    errors = Errors()
    logging.getLogger().addHandler(errors)

    class Machine(Conversations):
        pass

    Machine.deps, Machine.clock, Machine.loop, Machine.errors = deps, clock, loop, errors
    Machine.names = names
    try:
        await asyncio.to_thread(run_state_machine_as_test, Machine, settings=SETTINGS)
    finally:
        logging.getLogger().removeHandler(errors)
    print("fuzz:", dict(SEEN))  # shown with pytest -s


# --- what the fuzzer found ------------------------------------------------------------------
# (the forged payloads it found are in test_security_payloads.py)


async def test_found_paper_note_and_month_are_read_like_typed_text(deps: Deps) -> None:
    """`/vanban` stored its note as typed (PostgreSQL refuses a NUL: the admin got the apology)
    and recorded paper copies for months not yet open."""
    await investor(deps)  # someone reports on Đại Thắng
    admin = await invited_admin(deps)
    await play(
        admin,
        [
            ("/vanban dai-thang 6/2021 Bản giấy\x00 số 12", "Đã ghi nhận | !Xin lỗi, có lỗi"),
            ("/vanban dai-thang 12/2099", "Chưa đến kỳ báo cáo tháng 12/2099"),
            ("/vanban dai-thang 7/2021", "Chưa đến kỳ báo cáo tháng 07/2021"),
            ("/vanban dai-thang 12/2020", "từ tháng 01/2021"),
            (f"/vanban {'x' * 3000} 6/2021", "Không có ai được giao báo cáo | !" + "x" * 61),
        ],
    )
    async with deps.sessions() as session:
        receipts = list(await session.scalars(select(PaperReceipt)))
    assert [(r.period, r.note) for r in receipts] == [("2021-06", "Bản giấy số 12")]


async def _database(deps: Deps) -> str:
    async with deps.sessions() as session:
        bind = session.get_bind()
        return bind.dialect.name


async def test_found_revoke_with_an_odd_number(deps: Deps) -> None:
    """`/thuhoi ²` and `/thuhoi 99999999999999999999` ended in the apology (int('²') raised; the
    store's integer overflowed)."""
    admin = await invited_admin(deps)
    for text in ["/thuhoi ²", "/thuhoi 99999999999999999999"]:
        assert "Xin lỗi, có lỗi" not in await admin.say(text), text


async def test_found_invite_with_a_nul(deps: Deps) -> None:
    """`/moi investor dai\\x00thang` ended in the apology on PostgreSQL (a NUL in a query):
    typed text now loses its control characters before any handler reads it."""
    admin = await invited_admin(deps)
    for text in ["/moi investor dai\x00thang", "/moi department Sở\x00"]:
        assert "Xin lỗi, có lỗi" not in await admin.say(text), text
