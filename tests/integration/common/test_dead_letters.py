"""The dead-letter tool on PostgreSQL and SQLite: a replay stages the event in the outbox and is recorded once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from mall.events.v1.order_events_pb2 import OrderPaid
from sqlalchemy import Engine, func, select

from services.common import deadletters, events
from services.common.config import PruneSettings
from services.common.db import utcnow
from services.common.deadletters import Refused, dead_letter_resolutions, discard, replay
from services.common.outbox import RELAY_DEAD_LETTERS, dead_letters, outbox
from tests.fixtures.postgres import start_thread

pytestmark = pytest.mark.integration

SETTINGS = PruneSettings()  # republish_days 15
NOW = utcnow()


@pytest.fixture
def engine(each_service_engine: Callable[[str], Engine]) -> Engine:
    return each_service_engine("member")


def envelope_bytes(*, days_old: float = 0, event_type: str | None = None,
                   seconds: int | None = None) -> tuple[str, bytes]:
    """An order-paid envelope `days_old`, or occurred at `seconds` since the epoch (one no datetime holds, say)."""
    envelope = events.new_envelope(OrderPaid(order_no="O1", user_id=7, paid_fen=1200), producer="order",
                                   aggregate_id="O1", occurred_at=NOW - timedelta(days=days_old))
    if event_type is not None:
        envelope.event_type = event_type
    if seconds is not None:
        envelope.occurred_at.seconds = seconds
    return envelope.event_id, events.encode(envelope)


BEYOND_YEAR_9999 = 253_402_300_800


def add_letter(engine: Engine, payload: bytes, *, event_id: str | None, consumer: str = "member",
               offset: int = 5) -> int:
    with engine.begin() as conn:
        return conn.execute(dead_letters.insert().values(
            consumer=consumer, topic="order-paid", partition=0, offset=offset, event_id=event_id, reason="invalid",
            payload=payload, created_at=NOW).returning(dead_letters.c.id)).scalar_one()


def outbox_rows(engine: Engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(outbox.c.event_id, outbox.c.event_type, outbox.c.aggregate_id,
                                        outbox.c.envelope, outbox.c.published_at)))


def resolutions(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(
            dead_letter_resolutions.c.dead_letter_id, dead_letter_resolutions.c.action,
            dead_letter_resolutions.c.resolved_by))]


def test_a_replay_stages_the_original_envelope_in_the_outbox_and_records_who(engine: Engine) -> None:
    event_id, payload = envelope_bytes()
    letter = add_letter(engine, payload, event_id=event_id)

    assert replay(engine, letter, by="ops:li", settings=SETTINGS, now=NOW) == event_id

    assert outbox_rows(engine) == [(event_id, "order-paid", "O1", payload, None)]
    assert resolutions(engine) == [(letter, "replayed", "ops:li")]


def test_a_letter_already_replayed_is_not_replayed_again(engine: Engine) -> None:
    event_id, payload = envelope_bytes()
    letter = add_letter(engine, payload, event_id=event_id)
    replay(engine, letter, by="ops:li", settings=SETTINGS, now=NOW)

    with pytest.raises(Refused, match="already replayed by ops:li"):
        replay(engine, letter, by="ops:wang", settings=SETTINGS, now=NOW)
    with pytest.raises(Refused, match="already replayed by ops:li"):
        discard(engine, letter, by="ops:wang", now=NOW)

    assert (len(outbox_rows(engine)), resolutions(engine)) == (1, [(letter, "replayed", "ops:li")])


def test_a_discarded_letter_leaves_the_list_and_cannot_be_replayed(engine: Engine) -> None:
    event_id, payload = envelope_bytes()
    letter, kept = add_letter(engine, payload, event_id=event_id), add_letter(engine, b"junk", event_id=None, offset=6)

    discard(engine, letter, by="ops:li", now=NOW)

    with pytest.raises(Refused, match="already discarded"):
        replay(engine, letter, by="ops:li", settings=SETTINGS, now=NOW)
    assert [row.id for row in deadletters.list_letters(engine)] == [kept]
    assert [row.id for row in deadletters.list_letters(engine, include_resolved=True)] == [letter, kept]
    assert outbox_rows(engine) == []


def test_the_relays_own_letter_sends_its_outbox_row_again(engine: Engine) -> None:
    event_id, payload = envelope_bytes(days_old=100)  # never published, so nobody can have applied it
    with engine.begin() as conn:
        conn.execute(outbox.insert().values(event_id=event_id, event_type="order-paid", aggregate_id="O1",
                                            envelope=payload, created_at=NOW, published_at=NOW))
    letter = add_letter(engine, payload, event_id=event_id, consumer=RELAY_DEAD_LETTERS)

    replay(engine, letter, by="ops:li", settings=SETTINGS, now=NOW)

    assert outbox_rows(engine) == [(event_id, "order-paid", "O1", payload, None)]


@pytest.mark.parametrize(("payload", "event_id", "why"), [
    (b"", None, "holds no event"),  # a range lost to retention
    (envelope_bytes(event_type="order-teleported")[1], None, "which no topic carries"),
    (envelope_bytes(days_old=16)[1], None, "more than 15 days ago"),  # consumers may have forgotten it
    (envelope_bytes(seconds=BEYOND_YEAR_9999)[1], None, "carries a time no datetime holds"),
], ids=["no-event", "unknown-type", "too-old", "impossible-time"])  # the envelopes hold random ids: xdist workers must agree on names
def test_a_letter_that_cannot_be_replayed_changes_nothing(engine: Engine, payload: bytes, event_id: str | None,
                                                          why: str) -> None:
    letter = add_letter(engine, payload, event_id=event_id)

    with pytest.raises(Refused, match=why):
        replay(engine, letter, by="ops:li", settings=SETTINGS, now=NOW)

    assert (outbox_rows(engine), resolutions(engine)) == ([], [])


def test_two_replays_at_once_stage_the_event_once(service_engine: Callable[[str], Engine]) -> None:
    engine = service_engine("member")
    event_id, payload = envelope_bytes()
    letter = add_letter(engine, payload, event_id=event_id)
    results: dict[str, object] = {}

    threads = [start_thread(results, by, lambda by=by: replay(engine, letter, by=by, settings=SETTINGS, now=NOW))
               for by in ("ops:li", "ops:wang")]
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(map(str, results.values())) == sorted([event_id, "Refused"])
    assert len(outbox_rows(engine)) == 1


def test_the_command_line_lists_replays_and_refuses_a_second_replay(
        tmp_path: Path, sqlite_service_engine: Callable[[str], Engine], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    engine = sqlite_service_engine("member")
    monkeypatch.setenv("MEMBER_DATABASE_URL", str(engine.url))
    event_id, payload = envelope_bytes()
    letter = add_letter(engine, payload, event_id=event_id)

    codes = [deadletters.main(["--service", "member", "list"]),
             deadletters.main(["--service", "member", "replay", str(letter), "--by", "ops:li"]),
             deadletters.main(["--service", "member", "replay", str(letter), "--by", "ops:li"])]

    out, err = capsys.readouterr()
    assert codes == [0, 0, 1]
    assert f"{letter}\t" in out and event_id in out and "open" in out
    assert f"dead letter {letter} replayed: event {event_id} staged in the outbox" in out
    assert f"refused: dead letter {letter} was already replayed by ops:li" in err
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 1


def test_show_prints_the_letter_its_envelope_and_payload(engine: Engine) -> None:
    event_id, payload = envelope_bytes()
    letter = add_letter(engine, payload, event_id=event_id)

    shown = deadletters.describe(engine, letter)

    assert f"event_id: {event_id}" in shown and "envelope.event_type: order-paid" in shown
    assert 'order_no: "O1"' in shown and "paid_fen: 1200" in shown and "resolution: none" in shown


def test_show_prints_a_letter_whose_event_time_no_datetime_holds(engine: Engine) -> None:
    event_id, payload = envelope_bytes(seconds=BEYOND_YEAR_9999)
    letter = add_letter(engine, payload, event_id=event_id)

    shown = deadletters.describe(engine, letter)

    assert "envelope.occurred_at: order-paid" in shown and "carries a time no datetime holds" in shown
    assert "paid_fen: 1200" in shown
