"""The shopper's profile: what GET /me shows and which fields PATCH /me may change, and how."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.common.errors import InvalidInput, NotFound
from services.user import service
from services.user.domain import ProfileChanges, User
from tests.fakes import FakeUserUnitOfWork

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
REGION_RULE = ("must be a provincial-level division, by its full name (上海市, 广东省, 广西壮族自治区) or its short one "
               "(上海, 广东, 广西), or empty")


@pytest.fixture
def uow() -> FakeUserUnitOfWork:
    uow = FakeUserUnitOfWork()
    uow.users.add(User.register("13912345678", NOW))
    return uow


def profile_fields(user: User) -> tuple[object, ...]:
    return (user.nickname, user.avatar_url, user.gender, user.birthday, user.region)


def test_a_new_shoppers_profile_has_defaults_and_is_neither_verified_nor_bound(uow: FakeUserUnitOfWork) -> None:
    profile = service.get_profile(uow, user_id=1)

    assert (profile_fields(profile.user), profile.identity_verified, profile.wechat_bound) == (
        ("用户5678", "", "unknown", None, ""), False, False)


def test_every_allowlisted_field_can_be_changed_at_once(uow: FakeUserUnitOfWork) -> None:
    changes = ProfileChanges(nickname=" 小明 ", avatar_url="https://img.example.com/a.png", gender="male",
                             birthday=date(1990, 5, 17), region="广东省")

    profile = service.update_profile(uow, user_id=1, changes=changes, now=NOW)

    assert profile_fields(profile.user) == ("小明", "https://img.example.com/a.png", "male", date(1990, 5, 17),
                                            "广东省")
    assert uow.commits == 1


def test_fields_not_sent_are_left_as_they_are(uow: FakeUserUnitOfWork) -> None:
    service.update_profile(uow, user_id=1, changes=ProfileChanges(gender="female", birthday=date(2000, 1, 1)), now=NOW)

    profile = service.update_profile(uow, user_id=1, changes=ProfileChanges(region="上海"), now=NOW)

    assert profile_fields(profile.user) == ("用户5678", "", "female", date(2000, 1, 1), "上海市")


@pytest.mark.parametrize(("sent", "saved"), [("上海", "上海市"), ("上海市", "上海市"), ("新疆", "新疆维吾尔自治区"),
                                          ("澳门", "澳门特别行政区"), ("", "")])
def test_a_region_is_saved_by_its_provinces_full_name_or_empty(uow: FakeUserUnitOfWork, sent: str, saved: str) -> None:
    service.update_profile(uow, user_id=1, changes=ProfileChanges(region="广东省"), now=NOW)

    profile = service.update_profile(uow, user_id=1, changes=ProfileChanges(region=sent), now=NOW)

    assert (profile.user.region, uow.users.users[0].region) == (saved, saved)


def test_a_region_saved_as_free_text_before_stays_while_other_fields_change(uow: FakeUserUnitOfWork) -> None:
    uow.users.users[0].region = "广东 深圳"  # saved when the region was free text

    profile = service.update_profile(uow, user_id=1, changes=ProfileChanges(nickname="小明"), now=NOW)

    assert (profile.user.nickname, profile.user.region) == ("小明", "广东 深圳")


def test_birthday_none_clears_it(uow: FakeUserUnitOfWork) -> None:
    service.update_profile(uow, user_id=1, changes=ProfileChanges(birthday=date(2000, 1, 1)), now=NOW)

    profile = service.update_profile(uow, user_id=1, changes=ProfileChanges(birthday=None), now=NOW)

    assert profile.user.birthday is None


@pytest.mark.parametrize(("changes", "details"), [
    (ProfileChanges(nickname="   "), {"nickname": "must be 1-32 characters"}),
    (ProfileChanges(nickname="x" * 33), {"nickname": "must be 1-32 characters"}),
    (ProfileChanges(nickname="a\u202eb"), {"nickname": "must not contain control characters"}),
    (ProfileChanges(avatar_url="http://img.example.com/a.png"),
     {"avatar_url": "must be an https URL of at most 512 characters, or empty"}),
    (ProfileChanges(avatar_url="javascript:alert(1)"),
     {"avatar_url": "must be an https URL of at most 512 characters, or empty"}),
    (ProfileChanges(gender="other"), {"gender": "must be one of unknown, male, female"}),
    (ProfileChanges(birthday=date(2026, 11, 27)), {"birthday": "must be between 1900-01-01 and today"}),
    (ProfileChanges(birthday=date(1899, 12, 31)), {"birthday": "must be between 1900-01-01 and today"}),
    (ProfileChanges(region="区" * 65), {"region": REGION_RULE}),
    (ProfileChanges(region="广东 深圳"), {"region": REGION_RULE}),
    (ProfileChanges(region="Shanghai"), {"region": REGION_RULE}),
    (ProfileChanges(region=" 上海"), {"region": REGION_RULE}),
    (ProfileChanges(nickname="ok", gender="x"), {"gender": "must be one of unknown, male, female"}),
], ids=["blank-nickname", "long-nickname", "bidi-override", "http-avatar", "script-avatar", "gender", "future-birthday",
        "ancient-birthday", "long-region", "free-text-region", "latin-region", "spaced-region", "one-bad-of-two"])
def test_an_invalid_field_is_400_with_its_details_and_nothing_changes(
        uow: FakeUserUnitOfWork, changes: ProfileChanges, details: dict[str, str]) -> None:
    with pytest.raises(InvalidInput) as raised:
        service.update_profile(uow, user_id=1, changes=changes, now=NOW)

    assert (raised.value.code, raised.value.details) == ("PROFILE_INVALID", details)
    assert (profile_fields(uow.users.users[0]), uow.commits) == (("用户5678", "", "unknown", None, ""), 0)


def test_an_empty_change_is_refused(uow: FakeUserUnitOfWork) -> None:
    with pytest.raises(InvalidInput) as raised:
        service.update_profile(uow, user_id=1, changes=ProfileChanges(), now=NOW)

    assert (raised.value.code, uow.commits) == ("PROFILE_EMPTY", 0)


def test_an_empty_avatar_url_removes_the_avatar(uow: FakeUserUnitOfWork) -> None:
    service.update_profile(uow, user_id=1, changes=ProfileChanges(avatar_url="https://a.example.com/x.png"), now=NOW)

    assert service.update_profile(uow, user_id=1, changes=ProfileChanges(avatar_url=""), now=NOW).user.avatar_url == ""


def test_the_profile_of_an_unknown_user_is_not_found(uow: FakeUserUnitOfWork) -> None:
    with pytest.raises(NotFound):
        service.get_profile(uow, user_id=2)
