"""Dead letters of a service database: list and show them, replay one through the outbox, or discard it.

`python -m services.common.deadletters --service order list [--all]` (also `python -m tools.deadletters`):
`show ID`, `replay ID --by NAME`, `discard ID --by NAME`. A letter is resolved once, replayed or discarded, and
who did it when is recorded in dead_letter_resolutions; a second replay (or a replay of a discarded letter) is
refused.

A replay stages the letter's envelope, byte for byte (its event id included), in the outbox in the transaction that
records the replay, and the relay publishes it to its event type's topic: every consumer group of that topic gets it
again, and the groups that applied it before skip it by its event id. That holds only while they still remember it
(PROCESSED_EVENTS_RETENTION_DAYS), so an event older than PruneSettings.republish_days is refused, except one the
relay dead-lettered (never published, so nobody applied it). A replayed event arrives after its aggregate's later
events.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from google.protobuf import text_format
from sqlalchemy import Column, Connection, Engine, ForeignKey, String, Table, select, update
from sqlalchemy.exc import IntegrityError

from services.common import events
from services.common.config import SERVICES, DatabaseTimeouts, Env, PruneSettings, database_url
from services.common.db import BigId, UTCDateTime, make_engine, utcnow
from services.common.outbox import RELAY_DEAD_LETTERS, dead_letters, infra_metadata, outbox

dead_letter_resolutions = Table(
    "dead_letter_resolutions", infra_metadata,
    Column("dead_letter_id", BigId, ForeignKey("dead_letters.id"), primary_key=True),
    Column("action", String(16), nullable=False),  # replayed | discarded
    Column("resolved_by", String(128), nullable=False),
    Column("resolved_at", UTCDateTime, nullable=False),
)


class Refused(Exception):
    """The dead letter cannot be replayed or discarded; nothing was changed."""


def list_letters(engine: Engine, *, include_resolved: bool = False, limit: int = 100) -> list[Any]:
    """Dead letters oldest first, unresolved only unless `include_resolved`; each with its resolution's columns."""
    query = (select(dead_letters.c.id, dead_letters.c.consumer, dead_letters.c.topic, dead_letters.c.partition,
                    dead_letters.c.offset, dead_letters.c.event_id, dead_letters.c.reason, dead_letters.c.created_at,
                    dead_letter_resolutions.c.action, dead_letter_resolutions.c.resolved_by,
                    dead_letter_resolutions.c.resolved_at)
             .outerjoin(dead_letter_resolutions, dead_letter_resolutions.c.dead_letter_id == dead_letters.c.id)
             .order_by(dead_letters.c.id).limit(limit))
    if not include_resolved:
        query = query.where(dead_letter_resolutions.c.action.is_(None))
    with engine.connect() as conn:
        return list(conn.execute(query))


def describe(engine: Engine, letter_id: int) -> str:
    """The letter, its resolution and its envelope (the payload as text when its type is known), for `show`."""
    with engine.connect() as conn:
        letter = _letter(conn, letter_id)
        resolution = conn.execute(select(dead_letter_resolutions).where(
            dead_letter_resolutions.c.dead_letter_id == letter_id)).first()
    lines = [f"{name}: {getattr(letter, name)}" for name in
             ("id", "consumer", "topic", "partition", "offset", "event_id", "created_at", "reason")]
    lines.append(f"resolution: {resolution.action} by {resolution.resolved_by} at {resolution.resolved_at}"
                 if resolution else "resolution: none")
    try:
        envelope = events.decode(letter.payload)
    except events.InvalidEvent as exc:
        return "\n".join([*lines, f"payload: {len(letter.payload)} bytes, not an event ({exc})"])
    lines += [f"envelope.{name}: {getattr(envelope, name)}" for name in
              ("event_type", "producer", "aggregate_id", "request_id")]
    try:
        lines.append(f"envelope.occurred_at: {events.datetime_of(envelope.occurred_at, envelope).isoformat()}")
    except events.InvalidEvent as exc:
        lines.append(f"envelope.occurred_at: {exc}")
    message_type = {name: message for message, name in events.EVENT_TYPES.items()}.get(envelope.event_type)
    if message_type is not None:
        try:
            lines.append("payload:\n" + text_format.MessageToString(events.unpack(envelope, message_type)))
        except events.InvalidEvent as exc:
            lines.append(f"payload: {exc}")
    return "\n".join(lines)


def replay(engine: Engine, letter_id: int, *, by: str, settings: PruneSettings, now: datetime | None = None) -> str:
    """Stage the letter's event in the outbox and record it replayed by `by`, in one transaction; its event id.
    Refused (nothing changed) when the letter was resolved before, holds no event or one of an unknown type, or its
    event is older than consumers remember (see the module's docstring)."""
    now = now or utcnow()
    with engine.begin() as conn:
        letter = _letter(conn, letter_id)
        _resolve(conn, letter_id, "replayed", by, now)
        try:
            envelope = events.decode(letter.payload)
        except events.InvalidEvent as exc:
            raise Refused(f"dead letter {letter_id} holds no event to replay ({exc}); a lost range is republished "
                          "from its producer's outbox") from None
        if envelope.event_type not in events.TOPICS:
            raise Refused(f"dead letter {letter_id} is a {envelope.event_type!r}, which no topic carries")
        try:
            occurred_at = events.datetime_of(envelope.occurred_at, envelope)
        except events.InvalidEvent as exc:
            raise Refused(f"dead letter {letter_id} cannot be replayed: {exc}") from None
        if letter.consumer != RELAY_DEAD_LETTERS and occurred_at < now - timedelta(days=settings.republish_days):
            raise Refused(f"dead letter {letter_id}'s event occurred at {occurred_at:%Y-%m-%d %H:%M}, more than "
                          f"{settings.republish_days} days ago: the consumers that applied it may have forgotten it "
                          "(PROCESSED_EVENTS_RETENTION_DAYS) and would apply it again")
        # The relay's own dead letters keep their outbox row (marked published): send that row again.
        staged = conn.execute(update(outbox).where(outbox.c.event_id == envelope.event_id)
                              .values(envelope=letter.payload, published_at=None)).rowcount
        if not staged:
            conn.execute(outbox.insert().values(event_id=envelope.event_id, event_type=envelope.event_type,
                                                aggregate_id=envelope.aggregate_id, envelope=letter.payload,
                                                created_at=now))
    return envelope.event_id


def discard(engine: Engine, letter_id: int, *, by: str, now: datetime | None = None) -> None:
    """Record the letter discarded by `by`: it leaves the list and can no longer be replayed."""
    with engine.begin() as conn:
        _letter(conn, letter_id)
        _resolve(conn, letter_id, "discarded", by, now or utcnow())


def _letter(conn: Connection, letter_id: int) -> Any:
    letter = conn.execute(select(dead_letters).where(dead_letters.c.id == letter_id)).first()
    if letter is None:
        raise Refused(f"no dead letter {letter_id}")
    return letter


def _resolve(conn: Connection, letter_id: int, action: str, by: str, now: datetime) -> None:
    """Record the resolution; Refused when the letter has one (found, or inserted by a concurrent transaction)."""
    if not 0 < len(by) <= 128:
        raise Refused("say who resolves it (--by), 1 to 128 characters")
    earlier = conn.execute(select(dead_letter_resolutions).where(
        dead_letter_resolutions.c.dead_letter_id == letter_id)).first()
    try:
        if earlier is None:
            with conn.begin_nested():
                conn.execute(dead_letter_resolutions.insert().values(
                    dead_letter_id=letter_id, action=action, resolved_by=by, resolved_at=now))
            return
    except IntegrityError:
        earlier = conn.execute(select(dead_letter_resolutions).where(
            dead_letter_resolutions.c.dead_letter_id == letter_id)).first()
    raise Refused(f"dead letter {letter_id} was already {earlier.action} by {earlier.resolved_by} at "
                  f"{earlier.resolved_at:%Y-%m-%d %H:%M:%S}Z")


def create_dead_letter_resolutions(op) -> None:  # type: ignore[no-untyped-def]
    """In a migration: create dead_letter_resolutions (version 1 of its shape)."""
    infra_metadata.create_all(op.get_bind(), tables=[dead_letter_resolutions])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.common.deadletters", description=__doc__.splitlines()[0])
    parser.add_argument("--service", required=True, choices=SERVICES)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="unresolved dead letters, oldest first")
    listing.add_argument("--all", action="store_true", help="resolved ones too")
    listing.add_argument("--limit", type=int, default=100)
    commands.add_parser("show", help="one dead letter and its event").add_argument("id", type=int)
    for name in ("replay", "discard"):
        command = commands.add_parser(name)
        command.add_argument("id", type=int)
        command.add_argument("--by", required=True, help="who does it (recorded)")
    args = parser.parse_args(argv)
    env = Env()
    engine = make_engine(database_url(env, args.service), DatabaseTimeouts.from_env(env))
    try:
        if args.command == "list":
            for row in list_letters(engine, include_resolved=args.all, limit=args.limit):
                status = f"{row.action} by {row.resolved_by}" if row.action else "open"
                print(f"{row.id}\t{row.created_at:%Y-%m-%d %H:%M:%S}\t{row.consumer}\t{row.topic}/{row.partition}"
                      f"@{row.offset}\t{row.event_id or '-'}\t{status}\t{row.reason[:120]}")
        elif args.command == "show":
            print(describe(engine, args.id))
        elif args.command == "replay":
            event_id = replay(engine, args.id, by=args.by, settings=PruneSettings.from_env(env))
            print(f"dead letter {args.id} replayed: event {event_id} staged in the outbox")
        else:
            discard(engine, args.id, by=args.by)
            print(f"dead letter {args.id} discarded")
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
