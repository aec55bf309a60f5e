"""The event envelope: building, encoding, decoding and unpacking."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.user_events_pb2 import UserRegistered

from services.common import events


@pytest.fixture
def payload() -> UserRegistered:
    return UserRegistered(user_id=7, channel="sms",
                          registered_at=events.timestamp(datetime(2026, 11, 26, 8, 30, tzinfo=UTC)))


@pytest.fixture
def envelope(payload: UserRegistered) -> EventEnvelope:
    return events.new_envelope(event_type="user-registered", producer="user", aggregate_id="7", payload=payload)


def test_new_envelope_gets_a_random_uuid4_event_id(envelope: EventEnvelope) -> None:
    assert uuid.UUID(envelope.event_id).version == 4


def test_two_envelopes_never_share_an_event_id(payload: UserRegistered) -> None:
    ids = {events.new_envelope(event_type="user-registered", producer="user", aggregate_id="7",
                               payload=payload).event_id for _ in range(50)}

    assert len(ids) == 50


def test_new_envelope_carries_type_producer_aggregate_and_payload(envelope: EventEnvelope,
                                                                 payload: UserRegistered) -> None:
    assert (envelope.event_type, envelope.producer, envelope.aggregate_id, envelope.payload) == (
        "user-registered", "user", "7", payload.SerializeToString())


def test_new_envelope_is_stamped_with_the_current_request_id(request_id: str, payload: UserRegistered) -> None:
    envelope = events.new_envelope(event_type="user-registered", producer="user", aggregate_id="7", payload=payload)

    assert envelope.request_id == "req-test-1"


def test_new_envelope_outside_a_request_has_empty_request_id(envelope: EventEnvelope) -> None:
    assert envelope.request_id == ""


def test_occurred_at_defaults_to_now_in_utc(payload: UserRegistered) -> None:
    before = datetime.now(UTC)
    envelope = events.new_envelope(event_type="user-registered", producer="user", aggregate_id="7", payload=payload)
    after = datetime.now(UTC)

    assert before <= envelope.occurred_at.ToDatetime(tzinfo=UTC) <= after


def test_occurred_at_given_in_another_zone_is_stored_as_the_same_instant(payload: UserRegistered) -> None:
    beijing = datetime(2026, 11, 26, 16, 0, tzinfo=timezone(timedelta(hours=8)))

    envelope = events.new_envelope(event_type="user-registered", producer="user", aggregate_id="7",
                                   payload=payload, occurred_at=beijing)

    assert envelope.occurred_at.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def test_unknown_event_type_is_refused(payload: UserRegistered) -> None:
    with pytest.raises(ValueError, match="unknown event type 'user-deleted'"):
        events.new_envelope(event_type="user-deleted", producer="user", aggregate_id="7", payload=payload)


def test_encode_then_decode_gives_back_an_equal_envelope(envelope: EventEnvelope) -> None:
    assert events.decode(events.encode(envelope)) == envelope


def test_unpack_gives_back_the_payload(envelope: EventEnvelope, payload: UserRegistered) -> None:
    assert events.unpack(events.decode(events.encode(envelope)), UserRegistered) == payload


@pytest.mark.parametrize("data", [b"\xff\xff\xff\xff", b"garbage bytes", b"\n\xff"])
def test_decode_refuses_bytes_that_are_not_an_envelope(data: bytes) -> None:
    with pytest.raises(events.InvalidEvent, match="^not an EventEnvelope"):
        events.decode(data)


@pytest.mark.parametrize("event_id", ["", "42", "not-a-uuid"])
def test_decode_refuses_an_event_id_that_is_not_a_uuid(envelope: EventEnvelope, event_id: str) -> None:
    envelope.event_id = event_id

    with pytest.raises(events.InvalidEvent, match="is not a UUID"):
        events.decode(events.encode(envelope))


def test_decode_refuses_an_empty_event_type(envelope: EventEnvelope) -> None:
    envelope.event_type = ""

    with pytest.raises(events.InvalidEvent, match="^event_type is empty$"):
        events.decode(events.encode(envelope))


def test_decode_refuses_empty_bytes() -> None:
    with pytest.raises(events.InvalidEvent, match="is not a UUID"):
        events.decode(b"")


def test_unpack_refuses_a_payload_that_is_not_the_message_type(envelope: EventEnvelope) -> None:
    envelope.payload = b"\xff\xff\xff\xff"

    with pytest.raises(events.InvalidEvent, match="^user-registered payload is not a UserRegistered"):
        events.unpack(envelope, UserRegistered)


def test_timestamp_keeps_microseconds() -> None:
    moment = datetime(2026, 11, 26, 8, 30, 15, 123456, tzinfo=UTC)

    assert events.timestamp(moment).ToDatetime(tzinfo=UTC) == moment


def test_every_topic_is_kebab_case_and_listed_once() -> None:
    assert len(set(events.TOPICS)) == len(events.TOPICS) and all(
        topic == topic.lower() and " " not in topic and "_" not in topic for topic in events.TOPICS)


@pytest.mark.parametrize("value", [None, "a string"], ids=["tombstone", "str"])
def test_decode_refuses_a_record_value_that_is_not_bytes(value: object) -> None:
    with pytest.raises(events.InvalidEvent, match="not bytes"):
        events.decode(value)  # type: ignore[arg-type]
