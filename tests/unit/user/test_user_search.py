"""Staff find users by exact phone, id or nickname prefix; each search is audited, phones masked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.errors import InvalidInput
from services.user import service
from services.user.domain import User, UserSearch
from services.user.identity import IdentityKeys, IdentityVault
from tests.fakes import FakeUserUnitOfWork

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
STAFF = 900
VAULT = IdentityVault(IdentityKeys.derived_for_dev(b"test"))


@pytest.fixture
def uow() -> FakeUserUnitOfWork:
    """Users 1-4: 小明 (13900000001), 小明明 (13900000002), 大明 (no phone), 小红 (13900000004)."""
    tx = FakeUserUnitOfWork()
    for nickname, phone in (("小明", "13900000001"), ("小明明", "13900000002"), ("大明", None),
                            ("小红", "13900000004")):
        tx.users.add(User(phone=phone, created_at=T0, nickname=nickname))
    return tx


def ids(uow: FakeUserUnitOfWork, **criteria: object) -> tuple[list[int], int]:
    found, total = service.search_users(uow, VAULT, actor_id=STAFF, search=UserSearch(**criteria), now=T0)  # type: ignore[arg-type]
    return [user.id or 0 for user in found], total


def test_a_phone_finds_exactly_its_account(uow: FakeUserUnitOfWork) -> None:
    assert ids(uow, phone="13900000002") == ([2], 1)


def test_a_phone_of_nobody_finds_nothing(uow: FakeUserUnitOfWork) -> None:
    assert ids(uow, phone="13900000009") == ([], 0)


def test_an_id_finds_that_account(uow: FakeUserUnitOfWork) -> None:
    assert ids(uow, user_id=3) == ([3], 1)


def test_a_nickname_prefix_finds_every_account_whose_nickname_starts_so_newest_first(uow: FakeUserUnitOfWork) -> None:
    assert ids(uow, nickname_prefix="小明") == ([2, 1], 2)


def test_every_criterion_given_must_match(uow: FakeUserUnitOfWork) -> None:
    assert ids(uow, nickname_prefix="小明", phone="13900000002") == ([2], 1)


def test_a_page_of_the_matches_with_their_total(uow: FakeUserUnitOfWork) -> None:
    assert ids(uow, nickname_prefix="小明", offset=1, limit=1) == ([1], 2)


def test_each_search_is_audited_with_who_asked_the_masked_phone_and_the_ids_shown(uow: FakeUserUnitOfWork) -> None:
    ids(uow, phone="13900000001", nickname_prefix=" 小明 ")
    ids(uow, user_id=42)

    assert [(a.actor_id, a.criteria, a.user_ids, a.total, a.looked_up_at) for a in uow.lookups.lookups] == [
        (STAFF, "phone=139****0001 nickname^=小明", "1", 1, T0), (STAFF, "id=42", "", 0, T0)]
    assert uow.commits == 2


def test_guesses_at_one_phones_hidden_digits_are_audited_apart_without_the_phone(uow: FakeUserUnitOfWork) -> None:
    ids(uow, phone="13900000001", user_id=1)
    ids(uow, phone="13900010001", user_id=1)  # masked alike: 139****0001
    ids(uow, phone="13900000001")
    ids(uow, user_id=1)

    audited = [(a.criteria, a.phone_fingerprint) for a in uow.lookups.lookups]
    assert audited == [("phone=139****0001 id=1", VAULT.phone_fingerprint("13900000001")),
                       ("phone=139****0001 id=1", VAULT.phone_fingerprint("13900010001")),
                       ("phone=139****0001", VAULT.phone_fingerprint("13900000001")), ("id=1", None)]
    assert audited[0][1] != audited[1][1]
    assert not any("13900000001" in (fingerprint or "") for _, fingerprint in audited)


def test_a_phone_fingerprint_is_keyed_and_never_an_id_numbers() -> None:
    other = IdentityVault(IdentityKeys.derived_for_dev(b"other"))

    assert len({VAULT.phone_fingerprint("13900000001"), other.phone_fingerprint("13900000001"),
                VAULT.fingerprint("13900000001")}) == 3


def test_a_search_without_criteria_is_refused_and_not_audited(uow: FakeUserUnitOfWork) -> None:
    with pytest.raises(InvalidInput) as raised:
        ids(uow)

    assert (raised.value.code, uow.lookups.lookups) == ("USER_SEARCH_EMPTY", [])


@pytest.mark.parametrize(("criteria", "field"), [({"phone": "1390000000"}, "phone"),
                                                 ({"phone": "13900000001\n"}, "phone"),
                                                 ({"nickname_prefix": "  "}, "nickname"),
                                                 ({"nickname_prefix": "小\x00"}, "nickname"),
                                                 ({"nickname_prefix": "x" * 33}, "nickname"),
                                                 ({"user_id": -1}, "id")])
def test_malformed_criteria_are_refused_naming_the_field(uow: FakeUserUnitOfWork, criteria: dict[str, object],
                                                         field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        ids(uow, **criteria)

    assert (raised.value.code, list(raised.value.details), uow.lookups.lookups) == (
        "USER_SEARCH_INVALID", [field], [])


@pytest.mark.parametrize("prefix", ["小", " 小 ", "用", "用户", " 用户 ", "微", "微信", "微信用", "微信用户"])
def test_a_nickname_prefix_of_one_character_or_of_every_default_nickname_is_refused_and_not_audited(
        uow: FakeUserUnitOfWork, prefix: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        ids(uow, nickname_prefix=prefix, phone="13900000001")

    assert (raised.value.code, list(raised.value.details), uow.lookups.lookups) == (
        "USER_SEARCH_TOO_BROAD", ["nickname"], [])


@pytest.mark.parametrize(("prefix", "total"), [("用户5", 1), ("用户5678", 1), ("微信用户a", 1), ("用户名", 0)])
def test_a_nickname_prefix_beyond_the_default_start_is_searched(prefix: str, total: int) -> None:
    uow = FakeUserUnitOfWork()
    uow.users.add(User.register("13912345678", T0))  # 用户5678
    uow.users.add(User.register_wechat("o-wechat-abcd", T0))  # 微信用户abcd

    assert ids(uow, nickname_prefix=prefix)[1] == total
