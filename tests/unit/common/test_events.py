"""The event envelope: building, encoding, decoding and unpacking."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.member_events_pb2 import MemberPlanSubscribed
from mall.events.v1.order_events_pb2 import RefundPaidTwice
from mall.events.v1.user_events_pb2 import UserRegistered

from services.common import events


@pytest.fixture
def payload() -> UserRegistered:
    return UserRegistered(user_id=7, channel="sms",
                          registered_at=events.timestamp(datetime(2026, 11, 26, 8, 30, tzinfo=UTC)))


@pytest.fixture
def envelope(payload: UserRegistered) -> EventEnvelope:
    return events.new_envelope(payload, producer="user", aggregate_id="7")


def test_new_envelope_gets_a_random_uuid4_event_id(envelope: EventEnvelope) -> None:
    assert uuid.UUID(envelope.event_id).version == 4


def test_two_envelopes_never_share_an_event_id(payload: UserRegistered) -> None:
    ids = {events.new_envelope(payload, producer="user", aggregate_id="7").event_id for _ in range(50)}

    assert len(ids) == 50


def test_new_envelope_carries_type_producer_aggregate_and_payload(envelope: EventEnvelope,
                                                                 payload: UserRegistered) -> None:
    assert (envelope.event_type, envelope.producer, envelope.aggregate_id, envelope.payload) == (
        "user-registered", "user", "7", payload.SerializeToString())


def test_new_envelope_is_stamped_with_the_current_request_id(request_id: str, payload: UserRegistered) -> None:
    envelope = events.new_envelope(payload, producer="user", aggregate_id="7")

    assert envelope.request_id == "req-test-1"


def test_new_envelope_outside_a_request_has_empty_request_id(envelope: EventEnvelope) -> None:
    assert envelope.request_id == ""


def test_occurred_at_defaults_to_now_in_utc(payload: UserRegistered) -> None:
    before = datetime.now(UTC)
    envelope = events.new_envelope(payload, producer="user", aggregate_id="7")
    after = datetime.now(UTC)

    assert before <= envelope.occurred_at.ToDatetime(tzinfo=UTC) <= after


def test_occurred_at_given_in_another_zone_is_stored_as_the_same_instant(payload: UserRegistered) -> None:
    beijing = datetime(2026, 11, 26, 16, 0, tzinfo=timezone(timedelta(hours=8)))

    envelope = events.new_envelope(payload, producer="user", aggregate_id="7", occurred_at=beijing)

    assert envelope.occurred_at.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def test_a_message_that_is_not_a_registered_event_is_refused() -> None:
    with pytest.raises(ValueError, match="^EventEnvelope is not an event payload; register it in EVENT_TYPES$"):
        events.new_envelope(EventEnvelope(), producer="user", aggregate_id="7")


def test_the_event_type_is_named_after_the_payload_message() -> None:
    assert (events.event_type_of(UserRegistered), events.event_type_of(UserRegistered(user_id=1))) == (
        "user-registered", "user-registered")


def test_every_registered_event_type_is_the_kebab_case_name_of_its_message() -> None:
    kebab = {t: re.sub(r"(?<!^)(?=[A-Z])", "-", t.__name__).lower() for t in events.EVENT_TYPES}

    assert events.EVENT_TYPES == kebab


def test_topics_list_every_event_type_once() -> None:
    assert len(events.TOPICS) == len(set(events.TOPICS)) == 21
    assert set(events.EVENT_TYPES.values()) <= set(events.TOPICS)


def test_a_paid_plan_bought_with_the_wallet_is_an_event_of_its_own() -> None:
    assert events.event_type_of(MemberPlanSubscribed) == "member-plan-subscribed"
    assert [f.name for f in MemberPlanSubscribed.DESCRIPTOR.fields] == [
        "user_id", "member_no", "plan_id", "plan_name", "amount_fen", "posting_key", "balance_fen", "subscribed_at",
        "expires_at"]


def test_a_refund_paid_twice_is_an_event_of_its_own() -> None:
    assert events.event_type_of(RefundPaidTwice) == "refund-paid-twice"
    assert [f.name for f in RefundPaidTwice.DESCRIPTOR.fields] == [
        "order_no", "user_id", "refund_no", "amount_fen", "channel", "paid_at"]


# The event types shared/ARCHITECTURE.md ("Events") names; the code may add more (README, "Where the code goes beyond").
DESIGNED_EVENT_TYPES = {"user-registered", "user-verified", "order-created", "order-paid", "order-cancelled",
                        "order-shipped", "order-completed", "order-refunded", "member-joined", "member-recharged",
                        "member-withdrawn", "points-changed", "product-viewed", "page-viewed", "cart-item-added"}


def test_every_event_type_of_the_design_is_a_topic() -> None:
    assert DESIGNED_EVENT_TYPES - set(events.TOPICS) == set()


def test_the_envelope_has_the_fields_of_the_design() -> None:
    assert [f.name for f in EventEnvelope.DESCRIPTOR.fields] == [
        "event_id", "event_type", "occurred_at", "producer", "aggregate_id", "request_id", "payload"]


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


# uuid.UUID() also reads these spellings, longer than the 36 characters processed_events and dead_letters keep: on
# PostgreSQL neither the dedup record nor the dead letter could be written, and the partition would stop for ever.
@pytest.mark.parametrize("event_id", ["{12345678-1234-5678-1234-567812345678}",
                                      "urn:uuid:12345678-1234-5678-1234-567812345678",
                                      "12345678123456781234567812345678"])
def test_decode_refuses_an_event_id_that_is_not_a_uuid_in_its_36_character_form(envelope: EventEnvelope,
                                                                                  event_id: str) -> None:
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


def test_datetime_of_gives_back_the_aware_utc_moment_a_timestamp_holds(envelope: EventEnvelope) -> None:
    moment = datetime(2026, 11, 26, 8, 30, 15, 123456, tzinfo=UTC)

    assert events.datetime_of(events.timestamp(moment), envelope) == moment


@pytest.mark.parametrize("stamp", [Timestamp(seconds=253_402_300_800), Timestamp(seconds=-62_135_596_801),
                                   Timestamp(seconds=0, nanos=1_000_000_000), Timestamp(seconds=0, nanos=-1)],
                         ids=["after-9999", "before-year-1", "nanos-past-a-second", "negative-nanos"])
def test_datetime_of_refuses_a_time_no_datetime_holds_as_an_invalid_event(envelope: EventEnvelope,
                                                                          stamp: Timestamp) -> None:
    # protobuf raises a plain ValueError, which the consumer would retry for ever
    with pytest.raises(events.InvalidEvent, match=f"^user-registered {envelope.event_id} carries a time no datetime"):
        events.datetime_of(stamp, envelope)


def test_every_topic_is_kebab_case_and_listed_once() -> None:
    assert len(set(events.TOPICS)) == len(events.TOPICS) and all(
        topic == topic.lower() and " " not in topic and "_" not in topic for topic in events.TOPICS)


@pytest.mark.parametrize("value", [None, "a string"], ids=["tombstone", "str"])
def test_decode_refuses_a_record_value_that_is_not_bytes(value: object) -> None:
    with pytest.raises(events.InvalidEvent, match="not bytes"):
        events.decode(value)  # type: ignore[arg-type]
