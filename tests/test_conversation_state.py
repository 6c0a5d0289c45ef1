"""The typed conversation state (domain.state): it reads every shape the untyped dict had, so a
chat in the middle of a report when the type came in resumes; it writes the same shape back;
and a garbled stored state is a fresh one, never a crash."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.app import App
from domain.calendar import Period
from domain.roles import Role
from domain.state import ConversationState, Offered, Step
from handlers import choices
from handlers.context import Deps
from store.access import person_for
from store.contacts import update_chat_state
from store.db import unit_of_work
from store.models import Conversation, ReportDraft
from tests.dialog import Chat, file_may_report, play
from tests.test_dialogs import investor, invite

# What the code before the typed state stored, one dict per place that wrote it.
OLD_STATES: list[dict[str, Any]] = [
    {},
    {"locale": "en"},  # a stranger's messenger language
    {"phone": "84912345678"},  # a stranger's shared phone
    {"locale": "en", "phone": "84912345678"},
    {"mode": "pick_subject", "period": "2021-05"},
    {"draft": 12, "period": "2021-06", "mode": "ask", "q": "gpmb"},
    {"draft": 12, "period": "2021-06", "mode": "confirm_back", "q": "gpmb", "pending": "40"},
    {"draft": 12, "period": "2021-06", "mode": "reason_back", "q": "gpmb", "pending": "40"},
    {"draft": 12, "period": "2021-06", "mode": "summary"},
    {"draft": 12, "period": "2021-06", "mode": "ask", "q": "t14.percent", "editing": True},
    # /baocao again with several clusters, while a draft was open: the old keys stay
    {"draft": 12, "period": "2021-05", "mode": "pick_subject", "q": "qhct"},
    {"pending_photos": [3, 4]},  # photos sent with no report open
    {"pending_location": "21.000000,105.800000"},
    {"pending_photos": [3], "pending_location": "-33.856800,151.215300"},
    # a Zalo chat's offer, and one the reminders added to an idle chat
    {
        "draft": 12,
        "period": "2021-06",
        "mode": "ask",
        "q": "qhct",
        "offer": [["1", "co", "a:qhct:yes"], ["2", "khong", "a:qhct:no"]],
    },
    {"offer": [["a", "bao cao cum dai thang", "report:cluster:dai-thang:2021-06"]]},
]


def test_every_old_state_is_read_and_written_back_as_it_was() -> None:
    for old in OLD_STATES:
        state = ConversationState.from_json(old)
        assert state.to_json() == old, old  # an older worker reads what this one writes
        assert ConversationState.from_json(state.to_json()) == state


def test_old_states_read_as_typed_values() -> None:
    state = ConversationState.from_json(OLD_STATES[6])
    assert state.step is Step.CONFIRM_BACK and state.step.in_report
    assert (state.draft, state.period, state.question, state.pending) == (
        12,
        Period(2021, 6),
        "gpmb",
        "40",
    )
    assert not ConversationState.from_json(OLD_STATES[4]).step.in_report
    assert ConversationState.from_json(OLD_STATES[9]).editing
    assert ConversationState.from_json(OLD_STATES[13]).pending_photos == (3,)
    offer = ConversationState.from_json(OLD_STATES[14]).offer
    assert offer[0] == Offered("1", "co", "a:qhct:yes")
    assert choices.read("2", offer) == "a:qhct:no"  # read as the untyped offer was


def test_a_fresh_state_is_stored_as_nothing() -> None:
    assert ConversationState().to_json() == {}
    state = ConversationState.from_json(OLD_STATES[13])
    state.reset(keep_photos=True)
    assert state.to_json() == {"pending_photos": [3]}
    state.reset()
    assert state == ConversationState()


GARBLED: list[Any] = [
    None,
    [],
    "mode",
    7,
    {"mode": 7},
    {"mode": "frobnicate"},  # a step this version does not know
    {"mode": None, "q": ["x"], "draft": "12", "period": "June"},
    {"draft": True, "pending_photos": "3,4", "offer": {"1": "a:qhct:yes"}},
    {"draft": 2**40, "pending_photos": [1.5, -1, "2", None, 2**40], "period": "2021-13"},
    {"offer": [["1", "co"], [1, 2, 3], "a:qhct:yes", None]},
    {"pending_location": "somewhere", "locale": "fr", "phone": "call me"},
    {"pending_location": "95.000000,105.900000", "editing": "yes", "pending": 40},
    {"q": "x" * 5000, "pending": "9" * 5000},
]


def test_garbled_states_are_fresh_field_by_field() -> None:
    for garbled in GARBLED:
        assert ConversationState.from_json(garbled) == ConversationState(), garbled
    kept = ConversationState.from_json({"mode": 7, "draft": 5, "offer": [None], "q": "gpmb"})
    assert kept == ConversationState(draft=5, question="gpmb")  # what can be read is kept


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        *("mode", "q", "pending", "editing", "draft", "period", "offer", "pending_photos"),
        *("pending_location", "locale", "phone", "other"),
    ]
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(KEYS, JSON) | JSON)
def test_any_stored_json_reads_without_raising(data: Any) -> None:
    state = ConversationState.from_json(data)
    assert ConversationState.from_json(state.to_json()) == state


# --- in a chat: an old state in the store, and the conversation goes on ----------------------


async def _store_state(deps: Deps, chat: Chat, state: object) -> None:
    async with unit_of_work(deps.sessions) as session:
        conversation = await session.scalar(
            select(Conversation).where(Conversation.chat_id == chat.chat_id)
        )
        assert conversation is not None
        conversation.state = state  # type: ignore[assignment]


async def _stored_state(deps: Deps, chat: Chat) -> dict[str, Any]:
    async with deps.sessions() as session:
        state = await session.scalar(
            select(Conversation.state).where(Conversation.chat_id == chat.chat_id)
        )
    assert isinstance(state, dict)
    return state


async def _draft(deps: Deps) -> ReportDraft:
    async with deps.sessions() as session:
        draft = await session.scalar(select(ReportDraft).where(ReportDraft.status == "open"))
    assert draft is not None
    return draft


async def test_a_chat_mid_question_resumes_from_an_old_state(deps: Deps) -> None:
    chat = await investor(deps)
    await play(chat, [("/baocao", "QHCT"), ("[Có]", "Phương án bồi thường"), ("[Có]", "GPMB")])
    draft = await _draft(deps)
    # as the code before the typed state wrote it, keys in its order
    await _store_state(
        deps, chat, {"draft": draft.id, "period": "2021-06", "mode": "ask", "q": "gpmb"}
    )
    await play(chat, [("60", "Đã chuyển kinh phí GPMB")])
    assert await _stored_state(deps, chat) == {
        "mode": "ask",
        "q": "gpmb_funds",
        "draft": draft.id,
        "period": "2021-06",
    }
    assert (await _draft(deps)).answers["gpmb"] == {"v": "60"}


async def test_a_figure_going_down_resumes_at_its_confirmation(deps: Deps, app: App) -> None:
    chat = await investor(deps)
    await file_may_report(deps, {"gpmb": {"v": "60"}})
    await play(chat, [("/baocao", "QHCT"), ("[Có]", "bồi thường"), ("[Có]", "GPMB")])
    draft = await _draft(deps)
    await _store_state(
        deps,
        chat,
        {
            "draft": draft.id,
            "period": "2021-06",
            "mode": "confirm_back",
            "q": "gpmb",
            "pending": "40",
        },
    )
    # refused, and the confirmation asked again
    assert "giảm từ 60 % xuống 40 %" in await chat.send(chat.incoming(payload="back:gpmb:maybe"))
    assert "lý do" in await chat.send(chat.incoming(payload="back:gpmb:yes"))
    await play(chat, [("Đo lại", "Đã chuyển kinh phí GPMB")])
    assert (await _draft(deps)).answers["gpmb"] == {"v": "40", "reason": "Đo lại"}


async def test_picking_the_cluster_resumes_with_the_month_asked(deps: Deps) -> None:
    chat = Chat(deps, chat_id="4004")
    token = await invite(deps, Role.INVESTOR, clusters=["dai-thang", "phu-tuc"])
    await chat.say(f"/start {token}")
    await _store_state(deps, chat, {"mode": "pick_subject", "period": "2021-05"})
    answer = await chat.send(chat.incoming(payload="subject:1"))
    assert "Báo cáo tháng 05/2021" in answer, chat.log()


async def test_a_zalo_offer_stored_before_is_still_typeable(deps: Deps) -> None:
    chat = await investor(deps)
    await play(chat, [("/baocao", "QHCT")])
    draft = await _draft(deps)
    offer = [["1", "co", "a:qhct:yes"], ["2", "khong", "a:qhct:no"]]
    await _store_state(
        deps,
        chat,
        {"draft": draft.id, "period": "2021-06", "mode": "ask", "q": "qhct", "offer": offer},
    )
    answer = await chat.send(chat.incoming(text="1", typed_choices=True))
    assert "Phương án bồi thường" in answer, chat.log()
    assert (await _draft(deps)).answers["qhct"] == {"v": "yes"}
    stored = await _stored_state(deps, chat)
    assert [e[2] for e in stored["offer"]] == ["a:compensation:yes", "a:compensation:no"]


async def test_a_reminders_offer_is_read_by_the_typed_state(deps: Deps) -> None:
    chat = await investor(deps)
    offered = [["a", "bao cao", "report:cluster:dai-thang:2021-06"]]
    async with unit_of_work(deps.sessions) as session:
        await update_chat_state(
            session,
            chat.channel,
            chat.chat_id,
            choices.OFFER_KEY,
            lambda previous: choices.merged(previous, offered),
        )
    answer = await chat.send(chat.incoming(text="a", typed_choices=True))
    assert "Báo cáo tháng 06/2021" in answer, chat.log()


async def test_a_strangers_language_and_phone_are_kept_until_they_join(deps: Deps) -> None:
    chat = Chat(deps, chat_id="5005")
    await chat.say("xin chào")
    await _store_state(deps, chat, {"locale": "en", "phone": "84912345678"})
    answer = await chat.say(f"/start {await invite(deps, Role.INVESTOR, clusters=['phu-tuc'])}")
    assert "Welcome!" in answer, answer
    async with deps.sessions() as session:
        person = await person_for(session, chat.channel, chat.chat_id)
        assert person is not None and person.phone == "84912345678" and person.locale == "en"
    assert await _stored_state(deps, chat) == {}


async def test_a_location_kept_before_the_typed_state_goes_into_the_report(deps: Deps) -> None:
    chat = await investor(deps)
    await _store_state(deps, chat, {"pending_location": "21.000000,105.800000"})
    await play(chat, [("/baocao", "QHCT")])
    assert (await _draft(deps)).answers["_location"] == {"v": "21.000000,105.800000"}


async def test_a_garbled_stored_state_is_a_fresh_start(deps: Deps) -> None:
    chat = await investor(deps)
    for garbled in [
        ["not", "an", "object"],
        "mode",
        {"mode": "ask", "q": ["gpmb"], "draft": "12", "period": "June", "offer": {"1": 2}},
        {"mode": "summary", "draft": 999999},  # a draft that is not there
        {"mode": "reason_back", "q": "qhct", "draft": 2**40},
    ]:
        await _store_state(deps, chat, garbled)
        answer = await chat.say("dai thang")
        assert "Xin lỗi, có lỗi" not in answer, (garbled, answer)
    await _store_state(deps, chat, {"mode": "frobnicate", "pending_photos": "x"})
    await play(chat, [("/baocao", "QHCT | !Xin lỗi, có lỗi")])
    draft = await _draft(deps)
    # reason_back with no figure waiting (no code wrote that): the question is asked again
    await _store_state(
        deps, chat, {"mode": "reason_back", "q": "qhct", "draft": draft.id, "period": "2021-06"}
    )
    await play(chat, [("vì sao", "QHCT | !Xin lỗi, có lỗi")])
    assert "qhct" not in (await _draft(deps)).answers
