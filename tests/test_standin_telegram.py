"""The Telegram stand-in against the real python-telegram-bot, all on loopback."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Update,
)
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter
from telegram.ext import (
    AIORateLimiter,
    ApplicationBuilder,
    CallbackContext,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from testing.standin_telegram import (
    StandinBotAPI,
    running,
)

CHAT = 4242
Context = CallbackContext[Any, Any, Any, Any]


def png(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def bot_for(api: StandinBotAPI, token: str | None = None) -> Bot:
    return Bot(token or api.token, base_url=f"{api.root}/bot", base_file_url=f"{api.root}/file/bot")


@pytest.fixture
async def api() -> AsyncIterator[StandinBotAPI]:
    async with running(StandinBotAPI()) as served:
        yield served


async def test_bot_methods_are_recorded(api: StandinBotAPI) -> None:
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Có", callback_data="yes"),
                InlineKeyboardButton("Không", url="https://example.com"),
            ]
        ]
    )
    photo = png(64, 48)
    album = [png(10, 10), png(30, 20, (0, 0, 255))]
    async with bot_for(api) as bot:
        me = await bot.get_me()
        assert (me.id, me.is_bot, me.username) == (123456, True, "ccn_test_bot")

        message = await bot.send_message(CHAT, "Chọn một", reply_markup=keyboard)
        assert message.text == "Chọn một"
        assert message.reply_markup == keyboard
        assert message.from_user is not None and message.from_user.id == me.id
        assert message.chat.id == CHAT and message.chat.type == "private"

        sent_photo = await bot.send_photo(CHAT, photo, caption="ảnh hiện trường")
        assert (sent_photo.photo[-1].width, sent_photo.photo[-1].height) == (64, 48)
        assert sent_photo.caption == "ảnh hiện trường"

        group = await bot.send_media_group(
            CHAT, [InputMediaPhoto(album[0]), InputMediaPhoto(album[1], caption="hai")]
        )
        assert len(group) == 2
        assert group[0].media_group_id is not None
        assert group[0].media_group_id == group[1].media_group_id

        commands = [BotCommand("start", "Bắt đầu"), BotCommand("report", "Gửi báo cáo")]
        assert await bot.set_my_commands(commands, language_code="vi")
        assert tuple(await bot.get_my_commands(language_code="vi")) == tuple(commands)
        assert await bot.get_my_commands() == ()

    sent = api.sent(CHAT)
    assert [m["message_id"] for m in sent] == [1, 2, 3, 4]
    assert sent[0]["text"] == "Chọn một"
    assert api.keyboard(sent[0]) == [[("Có", "yes"), ("Không", "https://example.com")]]
    assert sent[1]["_bytes"] == photo
    assert sent[1]["caption"] == "ảnh hiện trường"
    assert [m["_bytes"] for m in sent[2:]] == album
    assert "caption" not in sent[2] and sent[3]["caption"] == "hai"
    assert api.commands == {
        "vi": [
            {"command": "start", "description": "Bắt đầu"},
            {"command": "report", "description": "Gửi báo cáo"},
        ]
    }
    methods = [name for name, _ in api.calls]
    assert methods == [
        "getMe",
        "getMe",
        "sendMessage",
        "sendPhoto",
        "sendMediaGroup",
        "setMyCommands",
        "getMyCommands",
        "getMyCommands",
    ]
    assert api.called("sendMessage")[0]["chat_id"] == CHAT  # decoded from the form's "4242"


async def test_application_long_polling(api: StandinBotAPI) -> None:
    seen: list[tuple[int, str]] = []

    async def start(update: Update, context: Context) -> None:
        assert update.message is not None
        seen.append((update.update_id, update.message.text or ""))
        choice = InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="pick:a")]])
        await update.message.reply_text(
            f"args: {' '.join(context.args or [])}", reply_markup=choice
        )

    async def photo(update: Update, context: Context) -> None:
        assert update.message is not None
        largest = update.message.photo[-1]
        data = await (await largest.get_file()).download_as_bytearray()
        await update.message.reply_text(
            f"photo {largest.width}x{largest.height}: {len(data)} bytes"
        )

    async def button(update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None and query.message is not None
        await query.answer("ok")
        await context.bot.send_message(query.message.chat.id, f"pressed: {query.data}")

    app = (
        ApplicationBuilder()
        .token(api.token)
        .base_url(f"{api.root}/bot")
        .base_file_url(f"{api.root}/file/bot")
        .rate_limiter(AIORateLimiter())
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(MessageHandler(filters.PHOTO, photo))
    app.add_handler(CallbackQueryHandler(button))
    errors: list[object] = []

    async def record_error(update: object, context: Context) -> None:
        errors.append(context.error)

    app.add_error_handler(record_error)
    assert app.updater is not None

    await app.initialize()
    await app.start()
    await app.updater.start_polling(poll_interval=0.0, timeout=1)
    try:
        first = api.send_text(CHAT, "/start abc", first_name="Lan", username="lan_ccn")
        reply = await api.wait_for(CHAT, lambda m: m.get("text") == "args: abc")
        assert reply["chat"] == {
            "id": CHAT,
            "type": "private",
            "first_name": "Lan",
            "username": "lan_ccn",
        }
        assert reply["message_id"] == 2  # the person's message was 1

        image = png(120, 80)
        api.send_photo(CHAT, image, caption="hiện trường")
        await api.wait_for(CHAT, lambda m: m.get("text") == f"photo 120x80: {len(image)} bytes")
        assert api.files_served == 1

        api.press_button(CHAT, "pick:a")
        await api.wait_for(CHAT, lambda m: m.get("text") == "pressed: pick:a")
        assert [answer.get("text") for answer in api.callback_answers.values()] == ["ok"]

        api.repeat_update(first)
        replies = await api.wait_for_count(CHAT, 4)
        assert [m["text"] for m in replies] == [
            "args: abc",
            f"photo 120x80: {len(image)} bytes",
            "pressed: pick:a",
            "args: abc",
        ]
        assert seen == [(first, "/start abc"), (first, "/start abc")]
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()

    assert errors == []
    polls = api.called("getUpdates")
    assert polls[0]["timeout"] == 1
    assert polls[-1]["timeout"] == 0  # PTB's closing call that confirms what it fetched


async def test_telegram_errors_are_reproduced(api: StandinBotAPI) -> None:
    async with bot_for(api) as bot:
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x")]])
        message = await bot.send_message(CHAT, "Đại Thắng & 😀 <ok>", reply_markup=keyboard)
        assert message.text == "Đại Thắng & 😀 <ok>"
        with pytest.raises(BadRequest, match=r"(?i)does not parse markup"):
            await bot.send_message(CHAT, "<b>1</b>", parse_mode="HTML")
        # PTB capitalizes descriptions ("Button_data_invalid"), hence (?i)
        with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
            too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x" * 65)]])
            await bot.send_message(CHAT, "a", reply_markup=too_long)
        with pytest.raises(BadRequest, match=r"(?i)image_process_failed"):
            await bot.send_photo(CHAT, b"not an image")

        # editing the text without reply_markup removes the keyboard, as in Telegram
        edited = await bot.edit_message_text("Đã chọn", chat_id=CHAT, message_id=message.message_id)
        assert not isinstance(edited, bool) and edited.reply_markup is None
        assert api.sent(CHAT)[-1]["text"] == "Đã chọn" and "edit_date" in api.sent(CHAT)[-1]
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await bot.edit_message_text("Đã chọn", chat_id=CHAT, message_id=message.message_id)
        assert await bot.delete_message(CHAT, message.message_id)
        with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
            await bot.delete_message(CHAT, message.message_id)

        api.blocked_chats.add(CHAT)
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(CHAT, "hello")

    with pytest.raises(InvalidToken):
        await bot_for(api, "999:WRONG").get_me()


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_flood_limits_when_enforced() -> None:
    async with running(StandinBotAPI(enforce_limits=True)) as api, bot_for(api) as bot:
        await bot.send_message(CHAT, "một")
        with pytest.raises(RetryAfter):
            await bot.send_message(CHAT, "hai")
        await bot.send_message(CHAT + 1, "khác")  # another chat is not limited
    assert api.too_many_requests == 1
    assert [m["text"] for m in api.sent(CHAT)] == ["một"]


async def test_updates_look_like_telegram(api: StandinBotAPI) -> None:
    api.send_text(CHAT, "/report@ccn_test_bot 2025-06")
    api.send_document(CHAT, b"%PDF-1.4", "bao-cao.pdf", "application/pdf", caption="tháng 6")
    api.send_location(CHAT, 21.0285, 105.8542)
    async with bot_for(api) as bot:
        updates = await bot.get_updates(timeout=0)
        text, document, location = (u.message for u in updates)
        assert text is not None and document is not None and location is not None
        assert text.parse_entities() == {text.entities[0]: "/report@ccn_test_bot"}
        assert text.from_user is not None and text.from_user.language_code == "vi"
        assert document.document is not None and document.document.file_name == "bao-cao.pdf"
        file = await bot.get_file(document.document.file_id)
        assert await file.download_as_bytearray() == bytearray(b"%PDF-1.4")
        assert location.location is not None and location.location.latitude == 21.0285
        assert [m.message_id for m in (text, document, location)] == [1, 2, 3]
        # confirming with the next offset drops them; nothing new arrives within the timeout
        assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == ()


async def test_command_menus_per_chat_and_refusals(api: StandinBotAPI) -> None:
    menu = [BotCommand("baocao", "Gửi báo cáo tháng"), BotCommand("tonghop", "Tổng hợp tháng")]
    api.meet(CHAT)
    async with bot_for(api) as bot:
        assert await bot.set_my_commands(menu, scope=BotCommandScopeChat(CHAT))
        assert tuple(await bot.get_my_commands(scope=BotCommandScopeChat(CHAT))) == tuple(menu)
        assert await bot.get_my_commands() == ()  # the default scope is another list
        assert api.chat_commands(CHAT) == [
            {"command": "baocao", "description": "Gửi báo cáo tháng"},
            {"command": "tonghop", "description": "Tổng hợp tháng"},
        ]
        assert await bot.delete_my_commands(scope=BotCommandScopeChat(CHAT))
        assert api.chat_commands(CHAT) == []
        refused = [
            ([BotCommand("BaoCao", "x")], {}, "bot_command_invalid"),
            ([BotCommand("bao-cao", "x")], {}, "bot_command_invalid"),
            ([BotCommand("a" * 33, "x")], {}, "bot_command_invalid"),
            ([BotCommand("baocao", "x" * 257)], {}, "bot_command_description_invalid"),
            ([BotCommand("baocao", "")], {}, "bot_command_description_invalid"),
            ([BotCommand(f"c{i}", "x") for i in range(101)], {}, "bot_commands_too_much"),
            (menu, {"scope": BotCommandScopeChat(CHAT + 1)}, "chat not found"),
            (menu, {"language_code": "vie"}, "invalid language code"),
        ]
        for commands, extra, error in refused:
            with pytest.raises(BadRequest, match=f"(?i){error}"):
                await bot.set_my_commands(commands, **extra)  # type: ignore[arg-type]
        assert await bot.set_my_commands([BotCommand("a" * 32, "x" * 256)])  # the limits
    assert set(api.chat_commands(CHAT + 1)) == set()


async def test_the_person_edits_a_message(api: StandinBotAPI) -> None:
    api.send_text(CHAT, "40")
    api.edit_text(CHAT, 1, "2")
    async with bot_for(api) as bot:
        sent, edited = await bot.get_updates(timeout=0)
    assert sent.message is not None and sent.message.text == "40"
    assert edited.edited_message is not None and edited.edited_message.text == "2"
    assert edited.edited_message.message_id == 1 and edited.edited_message.edit_date is not None
