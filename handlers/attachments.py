"""Photos and locations a person sends: recorded (already checked and on disk), and kept for
the next report when none is open; the report flow links them to its draft."""

from __future__ import annotations

from domain.draft import where
from domain.forms import Question
from handlers import integrity
from handlers.context import Ctx
from handlers.port import Reply
from store.photos import NotPrepared, record_photo


def note_album(ctx: Ctx) -> None:
    """A photo of an album (sent together, delivered as one update per photo): note this update
    as the album's latest handled, in the chat's state saved by this update's transaction. The
    channel answers the album once, from the worker whose update is still the latest after a
    moment of quiet (store.albums)."""
    incoming = ctx.incoming
    if incoming.media_group_id and incoming.update_id is not None:
        ctx.state.album_update(incoming.media_group_id, incoming.update_id)


async def store_photos(ctx: Ctx) -> tuple[list[int], list[str]]:
    """Record the incoming photos, already checked and written to disk before the transaction
    (conversation.handle); the ids stored and the reasons of those refused. Every photo flow
    comes through here, so this is where an album's latest update is noted."""
    assert ctx.person is not None
    note_album(ctx)
    stored: list[int] = []
    refused: list[str] = []
    for attachment in ctx.incoming.attachments:
        if attachment.refused:
            refused.append(attachment.refused)
            continue
        if attachment.prepared is None:
            raise NotPrepared()  # handle() prepares the photos and tries again
        photo, new = await record_photo(ctx.session, attachment.prepared)
        stored.append(photo.id)
        ctx.recorded_photos.add(photo.sha256)
        await integrity.check_photo(ctx, photo, new)  # used before, old, far: kept and told
    return stored, refused


def refusals(ctx: Ctx, refused: list[str]) -> list[Reply]:
    _ = ctx._
    out = []
    if "not_image" in refused:
        out.append(Reply(_("That file is not a photo (JPEG, PNG or WebP); it was not saved.")))
    if "too_many_pixels" in refused:
        out.append(
            Reply(_("That picture has too many pixels to be a site photo; it was not saved."))
        )
    if "too_large" in refused:
        out.append(
            Reply(
                _("That photo is larger than {mb} MB; please send a smaller one.").format(
                    mb=ctx.deps.config.max_photo_bytes // (1024 * 1024)
                )
            )
        )
    return out + integrity.notices(ctx)  # what was noticed about the photos kept


def photo_cap(ctx: Ctx, question: Question | None) -> int:
    cap = ctx.deps.config.max_photos
    return min(cap, question.max_photos) if question is not None else cap


async def photos_while_idle(ctx: Ctx) -> list[Reply]:
    """Photos sent with no report open: keep them, and attach them to the next report opened."""
    _ = ctx._
    stored, refused = await store_photos(ctx)
    replies = refusals(ctx, refused)
    if stored:
        pending = tuple(dict.fromkeys([*ctx.state.pending_photos, *stored]))
        ctx.state.pending_photos = pending
        replies.append(
            Reply(
                _(
                    "Photos kept ({count}). Send /baocao and they will be added to your report."
                ).format(count=len(pending))
            )
        )
    return replies


def location_while_idle(ctx: Ctx) -> list[Reply]:
    """A location shared with no report open: kept for the next report."""
    assert ctx.incoming.location is not None
    ctx.state.pending_location = where(ctx.incoming.location)
    return [Reply(ctx._("Location kept. Send /baocao and it will be added to your report."))]
