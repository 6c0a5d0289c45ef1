"""The entry point of every update: dedupe, identify the person, route, save the state. Where
an update goes is declared in handlers.routes; each flow has its module (onboarding, reporting,
status, admin, paper)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from datetime import timedelta

from domain import answers, i18n
from domain.draft import valid_where, where
from domain.state import ConversationState
from handlers import choices, outbox, routes
from handlers.admin import describe_person, invite_problem
from handlers.context import Ctx, Deps
from handlers.later import run as run_later
from handlers.outbox import Later
from handlers.port import Attachment, Incoming, Reply
from store import conversations
from store.access import chat_of, is_member, person_for
from store.db import unit_of_work
from store.images import PhotoRejected
from store.models import ChannelIdentity, Person
from store.photos import NotPrepared, Prepared, prepare_photo, release_photos
from store.timings import STATS

# bot/cli.py prints invitations and people as the chat does
__all__ = ["describe_person", "handle", "invite_problem", "route"]

log = logging.getLogger(__name__)
route = routes.route  # looked up at each update (a test replaces it)


async def handle(incoming: Incoming, deps: Deps) -> list[Reply]:
    """Handle one update in one short transaction. Its photos are downloaded, checked and
    written to disk before it (slow work holds no lock); a failure rolls everything back, the
    "processed" mark included, and apologises, so the person's draft is as it was before this
    message and a redelivery is handled afresh. An update delivered again after it was handled
    gets the answer kept with its mark (handlers.outbox), unless this process gave it: the mark
    is the transaction's last write, so that is found out at its end (or when it fails), and
    what the update did again is rolled back. Files of a photo no row refers to afterwards
    (refused, rolled back, not used) are deleted."""
    prepared: list[Prepared] = []
    on_record: set[str] = set()  # photos whose row a committed transaction holds
    try:
        if incoming.attachments and await _may_keep_photos(incoming, deps):
            incoming = await _prepare_photos(incoming, deps, prepared)
        later: list[Later] = []
        try:
            replies = await _in_transaction(incoming, deps, on_record, later)
        except NotPrepared:  # became someone between the check and the transaction: once more
            incoming = await _prepare_photos(incoming, deps, prepared)
            later.clear()
            replies = await _in_transaction(incoming, deps, on_record, later)
        if later:  # committed: what it asked for that takes long (handlers.later)
            replies += await run_later(deps, later)
        return replies
    except _Delivered:
        return await _answer_again(incoming, deps)
    except Exception:
        log.exception(
            "update %s from %s:%s failed", incoming.update_id, incoming.channel, incoming.chat_id
        )
        _ = i18n.gettext_for(deps.config.default_locale)
        return [Reply(_("Sorry, something went wrong. Please send that again in a moment."))]
    finally:
        if prepared:
            await _release_photos(prepared, deps, on_record)


class _Delivered(Exception):
    """This update's "processed" mark is already there."""


async def _in_transaction(
    incoming: Incoming, deps: Deps, on_record: set[str], later: list[Later]
) -> list[Reply]:
    """_handle_in_transaction; a failure of an update delivered again (handled on a state it
    already changed) is that update delivered again, not a failure."""
    try:
        return await _handle_in_transaction(incoming, deps, on_record, later)
    except (_Delivered, NotPrepared):
        raise
    except Exception:
        if incoming.update_id is not None and await _marked(incoming, deps):
            raise _Delivered() from None
        raise


async def _marked(incoming: Incoming, deps: Deps) -> bool:
    assert incoming.update_id is not None
    try:
        async with deps.sessions() as session:
            return await conversations.was_processed(session, incoming.channel, incoming.update_id)
    except Exception:
        log.exception("could not check whether update %s was handled", incoming.update_id)
        return False


async def _answer_again(incoming: Incoming, deps: Deps) -> list[Reply]:
    """Delivered again: nothing more if this process answered it (its answer went or is
    going), else the answer kept when it was handled — the first may have died with the
    process that gave it, before the channel sent it."""
    assert incoming.update_id is not None
    if (incoming.channel, incoming.update_id) in deps.answered:
        return []
    async with deps.sessions() as session:
        stored = await conversations.replies_of(session, incoming.channel, incoming.update_id)
    replies = outbox.decode(stored)
    if replies:
        log.info("update %s from %s answered again", incoming.update_id, incoming.channel)
    deps.answered.add(incoming.channel, incoming.update_id)
    return replies + await run_later(deps, outbox.decode_later(stored))


async def _may_keep_photos(incoming: Incoming, deps: Deps) -> bool:
    """A new update from someone invited (a stranger's photos are never downloaded): a chat
    this process lately handled as a person's, or else a short read before the transaction.
    The transaction itself decides."""
    if (incoming.channel, incoming.chat_id) in deps.members:
        return True
    async with deps.sessions() as session:
        return await is_member(
            session, incoming.channel, incoming.chat_id, new_update=incoming.update_id
        )


async def _prepare_photos(incoming: Incoming, deps: Deps, prepared: list[Prepared]) -> Incoming:
    """Download each attachment (the channel applies its size limit), then check it and write
    its files off the event loop; one at a time, so one photo's bytes are in memory at once."""
    config = deps.config
    ready: list[Attachment] = []
    for attachment in incoming.attachments:
        if attachment.prepared is not None or attachment.refused:
            ready.append(attachment)
            continue
        try:
            began = time.perf_counter()
            data = await attachment.fetch()
            fetched = time.perf_counter()
            photo = await config.inspector.inspect_then(
                data,
                config.max_photo_bytes,
                functools.partial(prepare_photo, data, config.data_dir, config.max_photo_bytes),
            )
            if STATS is not None:
                STATS.add("photo/download", fetched - began)
                STATS.add("photo/prepare_thread", time.perf_counter() - fetched)
        except PhotoRejected as exc:
            ready.append(dataclasses.replace(attachment, refused=exc.reason))
            continue
        prepared.append(photo)
        ready.append(dataclasses.replace(attachment, prepared=photo))
    return dataclasses.replace(incoming, attachments=tuple(ready))


async def _release_photos(prepared: list[Prepared], deps: Deps, on_record: set[str]) -> None:
    """After the transaction: keep the files a Photo row refers to, delete the others (the
    store is asked only about those the committed transaction did not record)."""
    written = {p.sha256 for p in prepared if p.written}
    referenced: set[str] = set(written)  # if the store cannot say, keep them
    unknown = written - on_record
    if unknown:
        try:
            async with deps.sessions() as session:
                found = await conversations.photos_on_record(session, unknown)
            referenced = (written & on_record) | found
        except Exception:
            log.exception("could not check which photo files to keep")
    if any(p.written and p.sha256 not in referenced for p in prepared):
        await asyncio.to_thread(release_photos, prepared, referenced)  # files to delete
    else:
        release_photos(prepared, referenced)  # only the claims to let go: no thread's trip


async def _handle_in_transaction(
    incoming: Incoming, deps: Deps, on_record: set[str], later: list[Later]
) -> list[Reply]:
    """The update in one transaction; once it is committed, the photos whose row it holds are
    added to `on_record`, and the work it leaves for after the commit to `later`."""
    recorded: set[str] = set()
    incoming = _cleaned(incoming)
    began = time.perf_counter()
    async with unit_of_work(deps.sessions) as session:
        if STATS is not None:
            STATS.add("transaction/entered", time.perf_counter() - began)
        # one update at a time per chat: its conversation row is held as it is read
        chat = await chat_of(session, incoming.channel, incoming.chat_id, hold=True)
        new = None
        if chat is None:  # a first contact, unless the same chat's update in another worker
            # made the row meanwhile: the insert waits for that one, and the row is read then
            new = await conversations.new_conversation(session, incoming.channel, incoming.chat_id)
            if new is None:
                chat = await chat_of(session, incoming.channel, incoming.chat_id, hold=True)
        first_contact = chat is None
        identity: ChannelIdentity | None = None
        if chat is None:
            assert new is not None
            conversation = new
            # an invitation's link makes the chat a new person's (onboarding.accept): the
            # person the chat may have been bound to before is not read (a heavy join)
            person = (
                None
                if routes.invitation_token(incoming) is not None
                else await person_for(session, incoming.channel, incoming.chat_id)
            )
        else:
            conversation, person, identity = chat
        state = conversations.state_of(conversation)
        incoming = _chosen(incoming, state)
        if person is None and incoming.locale in i18n.SUPPORTED and state.locale is None:
            state.locale = incoming.locale
        ctx = Ctx(session, deps, incoming, conversation, person, state, recorded_photos=recorded)
        if person is not None:
            _touch(ctx, person, identity)
        shown_at = state.place
        replies = await route(ctx, first_contact)
        if incoming.typed_choices:
            replies, offered = choices.for_text_channel(replies, ctx.locale)
            if offered:
                ctx.state.offer = offered
            elif ctx.state.place != shown_at:
                ctx.state.offer = ()  # the choices shown no longer apply
            # else (e.g. /trogiup mid-question) the choices shown are still typeable
        if incoming.update_id is None:
            await conversations.save_state(session, conversation, ctx.state)
        elif not await conversations.save_and_mark(
            session, conversation, ctx.state, incoming.update_id, outbox.encode(replies, ctx.later)
        ):
            raise _Delivered()  # rolls back what this delivery did again
    if STATS is not None:
        STATS.add("transaction/total", time.perf_counter() - began)
    person = ctx.person
    deps.members.handled(
        incoming.channel,
        incoming.chat_id,
        None if person is None else (person.role or "", person.locale),
    )
    on_record.update(recorded)
    later.extend(ctx.later)
    if incoming.update_id is not None:
        deps.answered.add(incoming.channel, incoming.update_id)
    return replies


def _cleaned(incoming: Incoming) -> Incoming:
    """Typed text without control characters (a NUL cannot reach PostgreSQL) and a shared
    location only if it is a place on Earth; every command and answer reads these."""
    text = answers.clean_text(incoming.text)
    location = incoming.location
    if location is not None and not valid_where(where(location)):
        location = None  # the same rule as a stored location: a place on the globe
    if text == incoming.text and location == incoming.location:
        return incoming
    return dataclasses.replace(incoming, text=text, location=location)


def _chosen(incoming: Incoming, state: ConversationState) -> Incoming:
    """On a channel without buttons, a typed key or choice's words becomes that choice."""
    if not incoming.typed_choices or incoming.payload is not None:
        return incoming
    if incoming.text.startswith("/"):
        return incoming
    payload = choices.read(incoming.text, state.offer)
    if payload is None:
        return incoming
    return dataclasses.replace(incoming, payload=payload, text="")


# when the person last wrote, to the minute: a chat answering question after question does not
# write it again with every answer (Zalo's 7-day window and "the chat used last" need no more)
SEEN_PRECISION = timedelta(minutes=1)


def _touch(ctx: Ctx, person: Person, identity: ChannelIdentity | None) -> None:
    """The chat's identity (read with the chat, or among the person's): seen now, reachable."""
    if identity is None:
        identity = next(
            (
                i
                for i in person.identities
                if i.channel == ctx.incoming.channel and i.external_id == ctx.incoming.chat_id
            ),
            None,
        )
    if identity is None:
        return
    seen = identity.last_seen_at
    if seen is None or not seen <= ctx.now < seen + SEEN_PRECISION:
        identity.last_seen_at = ctx.now
    if not identity.reachable:
        identity.reachable = True
