"""Real-name verification: ID number and name rules, masking, encryption with rotating keys, the use cases."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidTag
from mall.events.v1.user_events_pb2 import UserVerified

from services.common.config import ConfigError
from services.common.errors import Conflict, DomainError, InvalidInput, RateLimited
from services.common.events import timestamp
from services.user import service
from services.user.domain import (
    IDENTITY_CHECKS,
    mask_id_number,
    mask_real_name,
    validate_id_number,
    validate_real_name,
)
from services.user.identity import IdentityKeys, IdentityVault, make_identity_checker
from tests.fakes import FakeUserUnitOfWork

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
TODAY = NOW.date()
ID_NUMBER = "11010519491231002X"   # the textbook example: Beijing Chaoyang, born 1949-12-31
OTHER_ID_NUMBER = "440304200002291236"  # born on a leap day
KEY_1, KEY_2, FINGERPRINT_KEY = (base64.b64encode(bytes([n]) * 32).decode() for n in (1, 2, 3))


def vault(spec: str = f"k1:{KEY_1}") -> IdentityVault:
    return IdentityVault(IdentityKeys.parse(spec, FINGERPRINT_KEY))


@pytest.mark.parametrize("number", [ID_NUMBER, OTHER_ID_NUMBER, "310101199003078889", "110105202611260011"])
def test_id_numbers_with_the_right_check_digit_and_a_real_past_birth_date_are_valid(number: str) -> None:
    assert validate_id_number(number, TODAY) == number


def test_a_lowercase_check_x_is_upper_cased() -> None:
    assert validate_id_number("11010519491231002x", TODAY) == ID_NUMBER


@pytest.mark.parametrize(("number", "problem"), [
    ("110105194912310021", "wrong check digit"),
    ("11010519491231002", "invalid"),                # 17 characters
    ("1101051949123100211", "invalid"),              # 19
    ("01010519491231002X", "invalid"),               # region cannot start with 0
    ("91010519491231002X", "invalid"),               # no province 91
    ("99010519491231002X", "invalid"),               # no province 99
    ("11010519490231002X", "invalid birth date"),    # February 31st
    ("110105189912310021", "invalid birth date"),    # before 1900
    ("110105202611270011", "invalid birth date"),    # born tomorrow
    ("11010519491231002Ｘ", "invalid"),               # full-width X
    ("１１010519491231002X", "invalid"),              # full-width digits
    ("", "invalid"),
])
def test_other_id_numbers_are_invalid_with_a_reason(number: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_id_number(number, TODAY)

    assert (raised.value.code, raised.value.details) == ("ID_NUMBER_INVALID", {"id_number": problem})


@pytest.mark.parametrize(("name", "expected"), [
    ("张三", "张三"), (" 欧阳娜娜 ", "欧阳娜娜"), ("买买提·艾力", "买买提·艾力"), ("阿卜杜•热合曼", "阿卜杜·热合曼")])
def test_names_of_chinese_characters_with_middle_dots_are_valid(name: str, expected: str) -> None:
    assert validate_real_name(name) == expected


@pytest.mark.parametrize("name", ["张", "Zhang San", "张三1", "·张三", "张··三", "张三·", "张 三", "张" * 31, ""])
def test_other_names_are_invalid(name: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_real_name(name)

    assert (raised.value.code, raised.value.details) == ("REAL_NAME_INVALID", {"real_name": "invalid"})


@pytest.mark.parametrize(("name", "masked"), [("张三", "张*"), ("欧阳娜娜", "欧***"), ("买买提·艾力", "买*****")])
def test_names_are_masked_to_the_first_character(name: str, masked: str) -> None:
    assert mask_real_name(name) == masked


def test_id_numbers_are_masked_to_the_first_and_last_four() -> None:
    assert mask_id_number(ID_NUMBER) == "1101**********002X"


# Encryption

def test_encrypted_values_decrypt_only_in_their_context() -> None:
    blob = vault().encrypt(ID_NUMBER, context="user:1:id_number")

    assert vault().decrypt("k1", blob, context="user:1:id_number") == ID_NUMBER
    assert ID_NUMBER.encode() not in blob
    with pytest.raises(InvalidTag):
        vault().decrypt("k1", blob, context="user:2:id_number")  # a ciphertext moved to another row


def test_each_encryption_uses_a_fresh_nonce() -> None:
    assert vault().encrypt("张三", context="c") != vault().encrypt("张三", context="c")


def test_after_rotation_new_values_use_the_new_key_and_old_ones_still_decrypt() -> None:
    old_blob = vault(f"k1:{KEY_1}").encrypt("张三", context="c")
    rotated = vault(f"k2:{KEY_2},k1:{KEY_1}")

    assert (rotated.active_key_id, rotated.decrypt("k1", old_blob, context="c")) == ("k2", "张三")
    assert rotated.decrypt("k2", rotated.encrypt("李四", context="c"), context="c") == "李四"


def test_a_value_under_a_retired_key_names_the_missing_key() -> None:
    blob = vault(f"k1:{KEY_1}").encrypt("张三", context="c")

    with pytest.raises(KeyError, match="identity key 'k1' is not configured"):
        vault(f"k2:{KEY_2}").decrypt("k1", blob, context="c")


def test_fingerprints_are_keyed_and_equal_for_equal_numbers() -> None:
    other_key = IdentityVault(IdentityKeys.parse(f"k1:{KEY_1}", KEY_2))

    assert vault().fingerprint(ID_NUMBER) == vault(f"k2:{KEY_2}").fingerprint(ID_NUMBER)
    assert vault().fingerprint(ID_NUMBER) != other_key.fingerprint(ID_NUMBER)
    assert len(vault().fingerprint(ID_NUMBER)) == 64


@pytest.mark.parametrize(("spec", "fingerprint_key", "message"), [
    ("", FINGERPRINT_KEY, "IDENTITY_KEYS must list at least one key"),
    (f"k1:{KEY_1[:-4]}", FINGERPRINT_KEY, "IDENTITY_KEYS: each entry"),
    (f"k1:{KEY_1},k1:{KEY_2}", FINGERPRINT_KEY, "IDENTITY_KEYS: each entry"),
    (f":{KEY_1}", FINGERPRINT_KEY, "IDENTITY_KEYS: each entry"),
    ("k1:not base64!", FINGERPRINT_KEY, "IDENTITY_KEYS: a key is not valid base64"),
    (f"k1:{KEY_1}", base64.b64encode(b"short").decode(), "IDENTITY_FINGERPRINT_KEY must be at least 32 bytes"),
])
def test_malformed_identity_keys_are_refused_at_start_up(spec: str, fingerprint_key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IdentityKeys.parse(spec, fingerprint_key)


def test_dev_keys_are_derived_reproducibly_from_the_local_secret() -> None:
    assert IdentityKeys.derived_for_dev(b"secret") == IdentityKeys.derived_for_dev(b"secret")
    assert IdentityKeys.derived_for_dev(b"secret") != IdentityKeys.derived_for_dev(b"other")


# Use cases

class Checker:
    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    def check(self, real_name: str, id_number: str) -> bool:
        self.asked.append((real_name, id_number))
        return self.answer


@pytest.fixture
def uow() -> FakeUserUnitOfWork:
    uow = FakeUserUnitOfWork()
    for phone in ("13900000001", "13900000002"):
        uow.users.add(service.User.register(phone, NOW))
    return uow


def verify(uow: FakeUserUnitOfWork, checker: Checker | None = None, *, user_id: int = 1, name: str = "张三",
           number: str = ID_NUMBER) -> service.VerifiedIdentity:
    return service.verify_identity(uow, checker or Checker(), vault(), user_id=user_id, real_name=name,
                                   id_number=number, now=NOW)


def test_verifying_stores_only_ciphertexts_and_a_fingerprint_and_emits_user_verified(uow: FakeUserUnitOfWork) -> None:
    checker = Checker()

    shown = verify(uow, checker)

    stored = uow.identities.verifications[0]
    assert (shown.real_name_masked, shown.id_number_masked, shown.verified_at) == ("张*", "1101**********002X", NOW)
    assert checker.asked == [("张三", ID_NUMBER)]
    assert (stored.user_id, stored.key_id, stored.id_number_fingerprint) == (1, "k1", vault().fingerprint(ID_NUMBER))
    assert ID_NUMBER.encode() not in stored.id_number_ciphertext + stored.real_name_ciphertext
    assert [(e.event_type, e.aggregate_id, e.payload) for e in uow.published] == [
        ("user-verified", "1", UserVerified(user_id=1, verified_at=timestamp(NOW)))]
    assert service.get_profile(uow, user_id=1).identity_verified is True


def test_the_verification_is_read_back_masked(uow: FakeUserUnitOfWork) -> None:
    verify(uow)

    shown = service.get_verification(uow, vault(), user_id=1)

    assert shown == service.VerifiedIdentity(real_name_masked="张*", id_number_masked="1101**********002X",
                                             verified_at=NOW)
    assert service.get_verification(uow, vault(), user_id=2) is None


def test_an_id_number_verified_by_another_account_is_a_conflict_once_the_provider_matched_the_name(
        uow: FakeUserUnitOfWork) -> None:
    verify(uow)
    checker = Checker()

    with pytest.raises(Conflict) as raised:
        verify(uow, checker, user_id=2, name="张三")

    assert (raised.value.code, checker.asked, len(uow.identities.verifications), len(uow.published)) == (
        "ID_NUMBER_TAKEN", [("张三", ID_NUMBER)], 1, 1)


def test_a_taken_id_number_with_a_wrong_name_is_a_mismatch_not_a_conflict(uow: FakeUserUnitOfWork) -> None:
    verify(uow)

    with pytest.raises(DomainError) as raised:
        verify(uow, Checker(answer=False), user_id=2, name="李四")

    assert raised.value.code == "IDENTITY_MISMATCH"


def test_an_account_gets_five_checks_a_day_then_is_refused_without_asking_the_provider(
        uow: FakeUserUnitOfWork) -> None:
    for _ in range(IDENTITY_CHECKS.count):
        with pytest.raises(DomainError):
            verify(uow, Checker(answer=False))
    checker = Checker()

    with pytest.raises(RateLimited) as raised:
        verify(uow, checker)

    assert (raised.value.code, raised.value.details, checker.asked) == (
        "IDENTITY_CHECKS_EXHAUSTED", {"retry_after": 86400}, [])
    assert verify(uow, user_id=2).id_number_masked == "1101**********002X"  # another account's budget is its own


def test_a_verified_account_cannot_verify_again(uow: FakeUserUnitOfWork) -> None:
    verify(uow)

    with pytest.raises(Conflict) as raised:
        verify(uow, number=OTHER_ID_NUMBER)

    assert (raised.value.code, len(uow.identities.verifications)) == ("IDENTITY_ALREADY_VERIFIED", 1)


def test_an_account_a_concurrent_check_verified_while_the_provider_answered_says_the_provider_was_asked(
        uow: FakeUserUnitOfWork) -> None:
    """Refused before the provider, IDENTITY_ALREADY_VERIFIED carries nothing more (the gateway gives the shop's daily
    budget back); after it, `provider_checked` (the check was paid for: it stays counted)."""
    class VerifiedMeanwhile(Checker):
        def check(self, real_name: str, id_number: str) -> bool:
            verify(uow, number=OTHER_ID_NUMBER)  # the other check of this account, answered first
            return super().check(real_name, id_number)

    with pytest.raises(Conflict) as after:
        verify(uow, VerifiedMeanwhile())
    with pytest.raises(Conflict) as before:
        verify(uow)

    assert (after.value.code, after.value.details) == ("IDENTITY_ALREADY_VERIFIED", {"provider_checked": True})
    assert (before.value.code, before.value.details) == ("IDENTITY_ALREADY_VERIFIED", {})


def test_a_name_the_provider_does_not_match_is_refused_and_nothing_is_stored(uow: FakeUserUnitOfWork) -> None:
    with pytest.raises(DomainError) as raised:
        verify(uow, Checker(answer=False))

    assert (raised.value.code, uow.identities.verifications, uow.published, uow.commits) == (
        "IDENTITY_MISMATCH", [], [], 1)  # only the counted check before asking the provider


def test_a_bad_name_and_a_bad_number_are_reported_together_without_asking_the_provider(
        uow: FakeUserUnitOfWork) -> None:
    checker = Checker()

    with pytest.raises(InvalidInput) as raised:
        verify(uow, checker, name="Zhang", number="110105194912310021")

    assert (raised.value.code, raised.value.details, checker.asked) == (
        "REAL_NAME_INVALID", {"real_name": "invalid", "id_number": "wrong check digit"}, [])


def test_the_lowercase_x_form_of_a_taken_number_is_the_same_number(uow: FakeUserUnitOfWork) -> None:
    verify(uow)

    with pytest.raises(Conflict):
        verify(uow, user_id=2, number=ID_NUMBER.lower())


def test_verification_dates_are_checked_against_the_day_of_the_request(uow: FakeUserUnitOfWork) -> None:
    born_today = "110105202611260011"

    assert verify(uow, number=born_today).id_number_masked == "1101**********0011"


def test_the_format_only_checker_is_made_by_name_and_accepts_anything() -> None:
    assert make_identity_checker("format-only").check("张三", ID_NUMBER) is True


def test_an_unknown_checker_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown IDENTITY_PROVIDER 'acme'"):
        make_identity_checker("acme")
