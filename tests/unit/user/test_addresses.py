"""Shipping addresses on the in-memory unit of work: validation, at most 20, exactly one default, owner only."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import DomainError, InvalidInput, NotFound
from services.user import service
from services.user.domain import MAX_ADDRESSES, Address, AddressFields
from tests.fakes import FakeUserUnitOfWork

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
HOME = AddressFields(receiver_name="张三", receiver_phone="13800138000", province="广东省", city="深圳市",
                     district="南山区", detail="科技园 1 号")
OFFICE = replace(HOME, detail="福田 CBD 8 楼")
PROVINCE_RULE = ("must be a provincial-level division, by its full name (上海市, 广东省, 广西壮族自治区) or its short "
                 "one (上海, 广东, 广西)")
ME, OTHER = 1, 2


def add(uow: FakeUserUnitOfWork, fields: AddressFields = HOME, *, user_id: int = ME, is_default: bool = False,
        minutes: int = 0) -> Address:
    return service.add_address(uow, user_id=user_id, fields=fields, is_default=is_default,
                               now=T0 + timedelta(minutes=minutes))


def defaults(uow: FakeUserUnitOfWork, user_id: int = ME) -> list[int | None]:
    return [a.id for a in uow.addresses.for_user(user_id) if a.is_default]


def test_the_first_address_becomes_the_default_even_unasked(uow: FakeUserUnitOfWork) -> None:
    address = add(uow)

    assert (address.id, address.is_default, address.created_at, uow.commits) == (1, True, T0, 1)


def test_a_later_address_is_not_the_default_unless_asked(uow: FakeUserUnitOfWork) -> None:
    add(uow)
    add(uow, OFFICE, minutes=1)

    assert defaults(uow) == [1]


def test_a_new_default_takes_over_from_the_old_one(uow: FakeUserUnitOfWork) -> None:
    add(uow)
    add(uow, OFFICE, is_default=True, minutes=1)

    assert defaults(uow) == [2]


def test_addresses_are_listed_default_first_then_newest_first(uow: FakeUserUnitOfWork) -> None:
    for minute in range(3):
        add(uow, minutes=minute)

    assert [a.id for a in service.list_addresses(uow, user_id=ME)] == [1, 3, 2]


def test_the_21st_address_is_refused(uow: FakeUserUnitOfWork) -> None:
    for minute in range(MAX_ADDRESSES):
        add(uow, minutes=minute)

    with pytest.raises(DomainError) as raised:
        add(uow, minutes=30)

    assert (raised.value.code, len(uow.addresses.addresses), uow.commits) == ("ADDRESS_LIMIT", 20, 20)


def test_the_limit_is_per_user(uow: FakeUserUnitOfWork) -> None:
    for minute in range(MAX_ADDRESSES):
        add(uow, minutes=minute)

    assert add(uow, user_id=OTHER).is_default is True


@pytest.mark.parametrize(("change", "details"), [
    ({"receiver_phone": "1380013800"}, {"receiver_phone": "must be an 11-digit mainland mobile number"}),
    ({"receiver_phone": "138００１３８０００"}, {"receiver_phone": "must be an 11-digit mainland mobile number"}),
    ({"province": "广东 "}, {"province": PROVINCE_RULE}),
    ({"province": "Guangdong"}, {"province": PROVINCE_RULE}),
    ({"province": "广西壮族"}, {"province": PROVINCE_RULE}),
    ({"city": " "}, {"city": "must be 2-20 characters"}),
    ({"district": "区\x00"}, {"district": "must not contain control characters"}),
    ({"detail": "x" * 121}, {"detail": "must be 2-120 characters"}),
    ({"receiver_name": "", "province": "火星"}, {"receiver_name": "must be 1-20 characters",
                                                "province": PROVINCE_RULE}),
])
def test_an_invalid_address_is_400_with_details_and_nothing_is_stored(
        uow: FakeUserUnitOfWork, change: dict[str, str], details: dict[str, str]) -> None:
    with pytest.raises(InvalidInput) as raised:
        add(uow, replace(HOME, **change))

    assert (raised.value.code, raised.value.details) == ("ADDRESS_INVALID", details)
    assert (uow.addresses.addresses, uow.commits) == ([], 0)


@pytest.mark.parametrize(("sent", "stored"), [("广东", "广东省"), ("广东省", "广东省"), ("上海", "上海市"),
                                           ("广西", "广西壮族自治区"), ("内蒙古", "内蒙古自治区"), ("宁夏", "宁夏回族自治区"),
                                           ("香港", "香港特别行政区")])
def test_a_province_is_stored_by_its_full_name_whether_sent_short_or_full(uow: FakeUserUnitOfWork, sent: str,
                                                                         stored: str) -> None:
    address = add(uow, replace(HOME, province=sent))

    assert (address.province, uow.addresses.for_user(ME)[0].province) == (stored, stored)


def test_a_changed_address_keeps_its_province_by_the_full_name(uow: FakeUserUnitOfWork) -> None:
    add(uow)

    changed = service.change_address(uow, user_id=ME, address_id=1, fields=replace(HOME, province="新疆"), now=T0)

    assert changed.province == "新疆维吾尔自治区"


def test_fields_are_stored_trimmed(uow: FakeUserUnitOfWork) -> None:
    address = add(uow, replace(HOME, receiver_name=" 张三 ", detail="  科技园 1 号 "))

    assert (address.receiver_name, address.detail) == ("张三", "科技园 1 号")


def test_changing_an_address_replaces_its_fields(uow: FakeUserUnitOfWork) -> None:
    add(uow)

    changed = service.change_address(uow, user_id=ME, address_id=1, fields=OFFICE, is_default=True,
                                     now=T0 + timedelta(minutes=5))

    assert (changed.detail, changed.is_default, changed.updated_at, changed.created_at) == (
        "福田 CBD 8 楼", True, T0 + timedelta(minutes=5), T0)


def test_changing_another_address_into_the_default_moves_the_default(uow: FakeUserUnitOfWork) -> None:
    add(uow)
    add(uow, OFFICE, minutes=1)

    service.change_address(uow, user_id=ME, address_id=2, fields=OFFICE, is_default=True, now=T0)

    assert defaults(uow) == [2]


def test_the_default_cannot_be_unmade_directly(uow: FakeUserUnitOfWork) -> None:
    add(uow)
    add(uow, OFFICE, minutes=1)

    with pytest.raises(DomainError) as raised:
        service.change_address(uow, user_id=ME, address_id=1, fields=OFFICE, is_default=False, now=T0)

    assert (raised.value.code, defaults(uow), uow.addresses.get(ME, 1).detail) == (  # type: ignore[union-attr]
        "DEFAULT_ADDRESS_REQUIRED", [1], HOME.detail)


def test_deleting_the_default_makes_the_newest_remaining_address_the_default(uow: FakeUserUnitOfWork) -> None:
    add(uow)
    add(uow, OFFICE, minutes=1)
    add(uow, OFFICE, minutes=2)

    service.delete_address(uow, user_id=ME, address_id=1, now=T0)

    assert ([a.id for a in uow.addresses.for_user(ME)], defaults(uow)) == ([3, 2], [3])


def test_deleting_the_last_address_leaves_none(uow: FakeUserUnitOfWork) -> None:
    add(uow)

    service.delete_address(uow, user_id=ME, address_id=1, now=T0)

    assert uow.addresses.for_user(ME) == []


@pytest.mark.parametrize("action", ["change", "delete"])
def test_another_users_address_is_not_found_and_unchanged(uow: FakeUserUnitOfWork, action: str) -> None:
    add(uow, user_id=OTHER)
    attempt = {
        "change": lambda: service.change_address(uow, user_id=ME, address_id=1, fields=OFFICE, is_default=True),
        "delete": lambda: service.delete_address(uow, user_id=ME, address_id=1),
    }[action]

    with pytest.raises(NotFound) as raised:
        attempt()

    theirs = uow.addresses.get(OTHER, 1)
    assert (raised.value.code, theirs is not None and theirs.detail, uow.commits) == ("ADDRESS_NOT_FOUND", HOME.detail, 1)


def test_a_change_that_does_not_mention_the_default_keeps_it(uow: FakeUserUnitOfWork) -> None:
    add(uow)
    add(uow, OFFICE, minutes=1)

    service.change_address(uow, user_id=ME, address_id=1, fields=replace(HOME, detail="新地址 2 号"), now=T0)
    service.change_address(uow, user_id=ME, address_id=2, fields=replace(OFFICE, detail="新地址 3 号"), now=T0)

    assert (defaults(uow), [a.detail for a in uow.addresses.for_user(ME)]) == ([1], ["新地址 2 号", "新地址 3 号"])
