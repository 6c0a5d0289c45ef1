"""The deadline rush's baseline: what a competent developer would write with python-telegram-bot
22 alone. An `Application` with a `ConversationHandler` (one state per question of the form, one
for the summary) and `PicklePersistence`; the same forms (store/forms/*.yaml, their `ask_if`
conditions), the same buttons (`a:<question>:yes`, `a:<question>:<i>`, `skip:`, `done:`,
`submit`), the same one-photo download, the same receipts. No database, no audit log, no
reminders, no dedupe of redelivered updates, no rate limiter (PTB's default).

    TELEGRAM_BOT_TOKEN=… TELEGRAM_API_URL=http://127.0.0.1:PORT DATA_DIR=… \\
        python -m benchmarks.ptb_baseline [--flush-every-update]

DATA_DIR holds `invitations.json` ({token: {cluster, form}}, written by deadline_rush.py), and
gets `baseline.pickle` (conversations, people, reports under bot_data["reports"]) and
`photos/<sha256>.jpg`. PicklePersistence writes the pickle every 60 s and at shut-down (its
default); with --flush-every-update, after every update (a handler in group 1 calls
`Application.update_persistence()`, which rewrites the whole file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import yaml
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    PicklePersistence,
    TypeHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

FORMS = Path(__file__).resolve().parents[1] / "store" / "forms"
SUMMARY = "summary"
PERIOD = "202106"
Context = ContextTypes.DEFAULT_TYPE
Question = dict[str, Any]

log = logging.getLogger("ptb_baseline")


def load_forms() -> dict[str, list[Question]]:
    return {
        name: yaml.safe_load((FORMS / f"{name}.yaml").read_text(encoding="utf-8"))["questions"]
        for name in ("founded", "operating")
    }


FORM_QUESTIONS = load_forms()


def _same(value: Any, wanted: Any) -> bool:
    try:
        return float(value) == float(wanted)
    except (TypeError, ValueError):
        return str(value) == str(wanted)


def applies(question: Question, answers: dict[str, Any]) -> bool:
    """The question's `ask_if` (a plan step that makes it asked anyway is not known here)."""
    condition = question.get("ask_if")
    if not condition:
        return True
    value = answers.get(condition["question"])
    if value is None:
        return False
    if "equals" in condition:
        return _same(value, condition["equals"])
    if "not_equals" in condition:
        return not _same(value, condition["not_equals"])
    if "in" in condition:
        return any(_same(value, v) for v in condition["in"])
    try:
        if "at_least" in condition:
            return float(value) >= float(condition["at_least"])
        if "at_most" in condition:
            return float(value) <= float(condition["at_most"])
    except (TypeError, ValueError):
        return False
    return True


def asked(form: str, answers: dict[str, Any]) -> list[Question]:
    return [q for q in FORM_QUESTIONS[form] if applies(q, answers)]


def next_question(form: str, answers: dict[str, Any]) -> tuple[int, int, Question] | None:
    """(number, of, question) of the first question not answered yet; None: all answered."""
    questions = asked(form, answers)
    for number, question in enumerate(questions, 1):
        if question["id"] not in answers:
            return number, len(questions), question
    return None


def keyboard(question: Question) -> InlineKeyboardMarkup | None:
    qid = question["id"]
    rows: list[list[InlineKeyboardButton]] = []
    if question["type"] == "yesno":
        rows.append(
            [
                InlineKeyboardButton("Có", callback_data=f"a:{qid}:yes"),
                InlineKeyboardButton("Không", callback_data=f"a:{qid}:no"),
            ]
        )
    elif question["type"] == "choice":
        rows.extend(
            [InlineKeyboardButton(choice["vi"], callback_data=f"a:{qid}:{i}")]
            for i, choice in enumerate(question["choices"])
        )
    elif question["type"] == "photos":
        rows.append([InlineKeyboardButton("Xong", callback_data=f"done:{qid}")])
    elif not question.get("required", True):
        rows.append([InlineKeyboardButton("Bỏ qua", callback_data=f"skip:{qid}")])
    return InlineKeyboardMarkup(rows) if rows else None


def parse(question: Question, text: str) -> Any:
    """A typed answer, or ValueError with what to send instead."""
    kind = question["type"]
    text = text.strip()
    if kind == "percent":
        value = float(text.replace(",", "."))
        if not 0 <= value <= 100:
            raise ValueError("Vui lòng gửi một số từ 0 đến 100.")
        return value
    if kind == "number":
        number = int(text)
        if number < int(question.get("min", 0)):
            raise ValueError("Vui lòng gửi một số không âm.")
        return number
    if kind == "date":
        day, month, year = (int(part) for part in text.split("/"))
        return f"{year:04d}-{month:02d}-{day:02d}"
    if kind == "month":
        month, year = (int(part) for part in text.split("/"))
        return f"{year:04d}-{month:02d}"
    if kind in ("yesno", "choice", "photos"):
        raise ValueError("Vui lòng bấm một nút bên dưới.")
    if len(text) > 1000:
        raise ValueError("Tối đa 1000 ký tự.")
    return text


async def send_question(update: Update, context: Context) -> str:
    """Ask the next question (its state) or show the summary."""
    data: dict[str, Any] = context.user_data  # type: ignore[assignment]
    chat = update.effective_chat
    assert chat is not None
    found = next_question(data["form"], data["answers"])
    if found is None:
        lines = [f"Anh/chị kiểm tra lại báo cáo tháng {PERIOD[4:]}/{PERIOD[:4]}:"]
        for number, question in enumerate(asked(data["form"], data["answers"]), 1):
            lines.append(f"{number}. {question['label']['vi']} — {data['answers'][question['id']]}")
        markup = InlineKeyboardMarkup(
            [[InlineKeyboardButton("Gửi báo cáo", callback_data="submit")]]
        )
        await context.bot.send_message(chat.id, "\n".join(lines), reply_markup=markup)
        return SUMMARY
    number, total, question = found
    text = f"({number}/{total}) {question['label']['vi']}"
    if question.get("hint"):
        text += f"\n{question['hint']['vi']}"
    await context.bot.send_message(chat.id, text, reply_markup=keyboard(question))
    return str(question["id"])


async def start(update: Update, context: Context) -> None:
    chat = update.effective_chat
    assert chat is not None and update.message is not None
    invitations: dict[str, dict[str, str]] = context.bot_data.setdefault("invitations", {})
    if not invitations:
        path = Path(os.environ["DATA_DIR"]) / "invitations.json"
        invitations.update(json.loads(path.read_text()))
    used: dict[str, int] = context.bot_data.setdefault("used", {})
    token = (context.args or [""])[0]
    invitation = invitations.get(token)
    if invitation is None or used.get(token, chat.id) != chat.id:
        await update.message.reply_text(f"Anh/chị chưa được mời. Mã trò chuyện: {chat.id}.")
        return
    used[token] = chat.id
    context.user_data.update(  # type: ignore[union-attr]
        cluster=invitation["cluster"], form=invitation["form"], answers={}, photos=[]
    )
    await update.message.reply_text(
        f"Chào mừng anh/chị! Cụm công nghiệp của anh/chị: {invitation['cluster']}.\n"
        "/baocao — gửi báo cáo tháng (kèm ảnh)\n/huy — tạm dừng"
    )


async def report(update: Update, context: Context) -> str | int:
    chat = update.effective_chat
    assert chat is not None
    data = context.user_data
    if not data or "form" not in data:
        await context.bot.send_message(chat.id, "Anh/chị chưa được mời.")
        return ConversationHandler.END
    await context.bot.send_message(
        chat.id, f"Báo cáo tháng {PERIOD[4:]}/{PERIOD[:4]} — {data['cluster']}."
    )
    return await send_question(update, context)


def _current(context: Context) -> Question | None:
    data: dict[str, Any] = context.user_data  # type: ignore[assignment]
    found = next_question(data["form"], data["answers"])
    return found[2] if found else None


async def on_button(update: Update, context: Context) -> str | None:
    query = update.callback_query
    assert query is not None
    await query.answer()
    await query.edit_message_reply_markup(None)
    question = _current(context)
    parts = (query.data or "").split(":")
    if question is None or len(parts) < 2 or parts[1] != question["id"]:
        return None  # a button of an earlier question: stay
    answers = context.user_data["answers"]  # type: ignore[index]
    if parts[0] == "a" and question["type"] == "yesno":
        answers[question["id"]] = parts[2]
    elif parts[0] == "a" and question["type"] == "choice":
        answers[question["id"]] = question["choices"][int(parts[2])]["value"]
    elif parts[0] == "skip":
        answers[question["id"]] = ""
    elif parts[0] == "done":
        answers[question["id"]] = len(context.user_data["photos"])  # type: ignore[index]
    else:
        return None
    return await send_question(update, context)


async def on_text(update: Update, context: Context) -> str | None:
    assert update.message is not None and update.effective_chat is not None
    question = _current(context)
    if question is None:
        return None
    try:
        value = parse(question, update.message.text or "")
    except ValueError as exc:
        problem = str(exc) if exc.args and "Vui lòng" in str(exc) else "Câu trả lời không hợp lệ."
        await update.message.reply_text(problem)
        return await send_question(update, context)
    context.user_data["answers"][question["id"]] = value  # type: ignore[index]
    return await send_question(update, context)


async def on_photo(update: Update, context: Context) -> None:
    message = update.message
    assert message is not None and message.photo
    photo = await message.photo[-1].get_file()
    data = bytes(await photo.download_as_bytearray())
    digest = hashlib.sha256(data).hexdigest()
    folder = Path(os.environ["DATA_DIR"]) / "photos"
    folder.mkdir(exist_ok=True)
    (folder / f"{digest}.jpg").write_bytes(data)
    photos: list[str] = context.user_data.setdefault("photos", [])  # type: ignore[union-attr]
    photos.append(digest)
    question = _current(context)
    markup = keyboard(question) if question and question["type"] == "photos" else None
    await message.reply_text(
        f"Đã nhận {len(photos)} ảnh. Gửi thêm hoặc bấm Xong.", reply_markup=markup
    )


async def on_submit(update: Update, context: Context) -> int:
    query = update.callback_query
    assert query is not None and update.effective_chat is not None
    await query.answer()
    await query.edit_message_reply_markup(None)
    data: dict[str, Any] = context.user_data  # type: ignore[assignment]
    number = context.bot_data.get("next_reference", 1)
    context.bot_data["next_reference"] = number + 1
    reference = f"BL-{PERIOD}-{number:05d}"
    context.bot_data.setdefault("reports", {})[reference] = {
        "chat": update.effective_chat.id,
        "cluster": data["cluster"],
        "answers": dict(data["answers"]),
        "photos": list(data["photos"]),
    }
    data["answers"], data["photos"] = {}, []
    await context.bot.send_message(
        update.effective_chat.id,
        f"Đã nhận báo cáo. Số tham chiếu: {reference}.\nXin cảm ơn!",
    )
    return ConversationHandler.END


async def cancel(update: Update, context: Context) -> int:
    assert update.effective_chat is not None
    await context.bot.send_message(update.effective_chat.id, "Đã tạm dừng.")
    return ConversationHandler.END


async def flush(update: Update, context: Context) -> None:
    """--flush-every-update: persist what this update changed before the next one."""
    chat, user = update.effective_chat, update.effective_user
    context.application.mark_data_for_update_persistence(
        chat_ids=chat.id if chat else None, user_ids=user.id if user else None
    )
    await context.application.update_persistence()


def build(token: str, api_url: str, data_dir: Path, *, flush_every_update: bool) -> Application:  # type: ignore[type-arg]
    persistence = PicklePersistence(filepath=data_dir / "baseline.pickle")
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{api_url}/bot")
        .base_file_url(f"{api_url}/file/bot")
        .persistence(persistence)
        .build()
    )
    answering = [
        CallbackQueryHandler(on_button, pattern=r"^(a|skip|done):"),
        MessageHandler(filters.TEXT & ~filters.COMMAND, on_text),
        MessageHandler(filters.PHOTO, on_photo),
    ]
    states: dict[object, list[Any]] = {
        question["id"]: answering for form in FORM_QUESTIONS.values() for question in form
    }
    states[SUMMARY] = [CallbackQueryHandler(on_submit, pattern=r"^submit$")]
    with warnings.catch_warnings():  # per_message=False with CallbackQueryHandler: intended
        warnings.simplefilter("ignore", PTBUserWarning)
        conversation = ConversationHandler(
            entry_points=[CommandHandler(["baocao", "report"], report)],
            states=states,
            fallbacks=[
                CommandHandler(["baocao", "report"], report),
                CommandHandler(["huy", "cancel"], cancel),
            ],
            name="report",
            persistent=True,
            allow_reentry=True,
        )
    application.add_handler(CommandHandler("start", start))
    application.add_handler(conversation)
    if flush_every_update:
        application.add_handler(TypeHandler(Update, flush), group=1)
    return application


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--flush-every-update", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level="INFO")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    data_dir = Path(os.environ["DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    application = build(
        os.environ["TELEGRAM_BOT_TOKEN"],
        os.environ["TELEGRAM_API_URL"].rstrip("/"),
        data_dir,
        flush_every_update=args.flush_every_update,
    )
    application.run_polling(allowed_updates=Update.ALL_TYPES)


if __name__ == "__main__":
    main()
