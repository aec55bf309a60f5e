"""/me routes: profile, password, addresses, identity; what is asked of the user service and what is answered."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.product.v1 import product_pb2
from mall.user.v1 import user_pb2

from services.common import formats
from services.common.grpc_server import CODE_KEY

PROFILE = user_pb2.Profile(id=42, phone_masked="139****5678", nickname="小明", avatar_url="", gender="male",
                           birthday="1990-05-17", region="上海", identity_verified=True, wechat_bound=False)
PROFILE_JSON = {"id": 42, "phone": "139****5678", "nickname": "小明", "avatar_url": "", "gender": "male",
                "birthday": "1990-05-17", "region": "上海", "identity_verified": True, "wechat_bound": False}


@pytest.fixture
def auth(bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    return bearer(user_id=42)


def test_me_answers_the_profile_with_the_masked_phone(client: FlaskClient, clients, auth) -> None:
    clients.user.GetProfile.reply = PROFILE

    response = client.get("/api/v1/me", headers=auth)

    assert (response.status_code, response.get_json()) == (200, PROFILE_JSON)


def test_me_without_a_birthday_answers_null(client: FlaskClient, clients, auth) -> None:
    clients.user.GetProfile.reply = user_pb2.Profile(id=42, phone_masked="139****5678", gender="unknown")

    assert client.get("/api/v1/me", headers=auth).get_json()["birthday"] is None


def test_me_needs_a_token(client: FlaskClient, clients) -> None:
    assert (client.get("/api/v1/me").status_code, clients.user.GetProfile.calls) == (401, [])


def test_patch_me_sends_only_the_fields_given(client: FlaskClient, clients, auth) -> None:
    clients.user.UpdateProfile.reply = PROFILE

    response = client.patch("/api/v1/me", json={"nickname": "小明", "gender": "male"}, headers=auth)

    assert response.status_code == 200
    sent = clients.user.UpdateProfile.calls[0].message
    assert (sent, sent.HasField("region"), sent.HasField("birthday")) == (
        user_pb2.UpdateProfileRequest(nickname="小明", gender="male"), False, False)


PROVINCE_RULE = ("must be a provincial-level division, by its full name (上海市, 广东省, 广西壮族自治区) or its short "
                 "one (上海, 广东, 广西)")


@pytest.mark.parametrize(("region", "sent"), [("上海", "上海市"), ("上海市", "上海市"), ("宁夏", "宁夏回族自治区"), ("", "")])
def test_patch_me_sends_a_region_by_its_provinces_full_name(client: FlaskClient, clients, auth, region: str,
                                                            sent: str) -> None:
    clients.user.UpdateProfile.reply = PROFILE

    response = client.patch("/api/v1/me", json={"region": region}, headers=auth)

    message = clients.user.UpdateProfile.calls[0].message
    assert (response.status_code, message.HasField("region"), message.region) == (200, True, sent)


@pytest.mark.parametrize("region", ["广东 深圳", "Shanghai", " 上海", "区" * 65])
def test_patch_me_with_a_region_naming_no_province_is_400_and_changes_nothing(client: FlaskClient, clients, auth,
                                                                             region: str) -> None:
    response = client.patch("/api/v1/me", json={"region": region}, headers=auth)

    assert (response.status_code, response.get_json()["error"]["details"], clients.user.UpdateProfile.calls) == (
        400, {"region": PROVINCE_RULE}, [])


def test_the_documented_regions_and_address_provinces_are_the_provinces_by_full_and_short_name(
        client: FlaskClient) -> None:
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    provinces = [*formats.PROVINCES, *formats.PROVINCE_SHORT_NAMES]

    assert (schemas["ProfilePatch"]["properties"]["region"]["enum"], schemas["AddressIn"]["properties"]["province"]
            ["enum"]) == (["", *provinces], provinces)


def test_patch_me_with_a_null_birthday_asks_to_clear_it(client: FlaskClient, clients, auth) -> None:
    clients.user.UpdateProfile.reply = PROFILE

    client.patch("/api/v1/me", json={"birthday": None}, headers=auth)

    sent = clients.user.UpdateProfile.calls[0].message
    assert (sent.HasField("birthday"), sent.birthday) == (True, "")


@pytest.mark.parametrize(("body", "field"), [
    ({"nickname": "ok", "phone": "13800000000"}, "phone"),
    ({"roles": ["admin"]}, "roles"),
    ({"id": 1}, "id"),
    ({"identity_verified": True}, "identity_verified"),
    ({"wechat_bound": True}, "wechat_bound"),
    ({"nickname": None}, "nickname"),
    ({"gender": "other"}, "gender"),
    ({"birthday": "1990-02-30"}, "birthday"),
    ({"nickname": "x" * 33}, "nickname"),
], ids=["phone", "roles", "id", "identity_verified", "wechat_bound", "null-nickname", "gender", "bad-date", "long"])
def test_patch_me_with_any_other_or_malformed_field_is_400_and_changes_nothing(
        client: FlaskClient, clients, auth, body: dict, field: str) -> None:
    response = client.patch("/api/v1/me", json=body, headers=auth)

    error = response.get_json()["error"]
    assert (response.status_code, error["code"], field in error["details"]) == (400, "INVALID_REQUEST", True)
    assert clients.user.UpdateProfile.calls == []


def test_password_change_with_the_current_password(client: FlaskClient, clients, auth) -> None:
    clients.user.ChangePassword.reply = user_pb2.LoginResponse(
        access_token="a", refresh_token="r", expires_in=900, user=user_pb2.User(id=42, phone_masked="139****5678"))

    response = client.put("/api/v1/me/password", json={"current_password": "old-pass-1", "new_password": "newpass99"},
                          headers=auth)

    sent = clients.user.ChangePassword.calls[0].message
    assert (response.status_code, response.get_json()["refresh_token"]) == (200, "r")
    assert (sent.current_password, sent.HasField("sms_code"), sent.new_password) == ("old-pass-1", False, "newpass99")


def test_password_change_with_an_sms_code(client: FlaskClient, clients, auth) -> None:
    client.put("/api/v1/me/password", json={"sms_code": "123456", "new_password": "newpass99"}, headers=auth)

    sent = clients.user.ChangePassword.calls[0].message
    assert (sent.HasField("current_password"), sent.sms_code) == (False, "123456")


def test_a_wrong_current_password_is_400_naming_it(client: FlaskClient, clients, auth, rpc_error) -> None:
    clients.user.ChangePassword.error = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "the current password is wrong",
                                                  ((CODE_KEY, "PASSWORD_WRONG"),
                                                   ("mall-error-details", '{"current_password": "wrong"}')))

    response = client.put("/api/v1/me/password", json={"current_password": "nope-1234", "new_password": "newpass99"},
                          headers=auth)

    assert (response.status_code, response.get_json()["error"]["code"], response.get_json()["error"]["details"]) == (
        400, "PASSWORD_WRONG", {"current_password": "wrong"})


# Phone binding

BINDING = {"phone": "13912345678", "code": "123456", "wechat_code": "wx-code-1"}


def test_binding_a_phone_passes_phone_and_codes_and_answers_the_masked_profile(client: FlaskClient, clients,
                                                                                auth) -> None:
    clients.user.BindPhone.reply = PROFILE

    response = client.post("/api/v1/me/phone", json=BINDING, headers=auth)

    assert (response.status_code, response.get_json()) == (200, PROFILE_JSON)
    assert clients.user.BindPhone.calls[0].message == user_pb2.BindPhoneRequest(phone="13912345678", code="123456",
                                                                               wechat_code="wx-code-1")
    assert "13912345678" not in response.get_data(as_text=True)


def test_binding_a_phone_needs_a_token(client: FlaskClient, clients) -> None:
    response = client.post("/api/v1/me/phone", json=BINDING)

    assert (response.status_code, clients.user.BindPhone.calls) == (401, [])


@pytest.mark.parametrize("body", [{**BINDING, "code": None}, {**BINDING, "phone": None}, {**BINDING, "wechat_code": None},
                                  {**BINDING, "phone": "1391234567"}, {**BINDING, "code": "12345"},
                                  {**BINDING, "wechat_code": ""}, {**BINDING, "user_id": 7}],
                         ids=["no-code", "no-phone", "no-wechat-code", "short-phone", "short-code", "empty-wechat-code",
                              "unknown-field"])
def test_a_malformed_binding_is_400_and_nothing_is_asked(client: FlaskClient, clients, auth, body: dict) -> None:
    response = client.post("/api/v1/me/phone", json={k: v for k, v in body.items() if v is not None}, headers=auth)

    assert (response.status_code, clients.user.BindPhone.calls) == (400, [])


@pytest.mark.parametrize(("status", "code", "http"), [
    (grpc.StatusCode.ABORTED, "PHONE_BOUND_ELSEWHERE", 409),
    (grpc.StatusCode.ABORTED, "PHONE_ALREADY_BOUND", 409),
    (grpc.StatusCode.INVALID_ARGUMENT, "SMS_CODE_EXPIRED", 400),
    (grpc.StatusCode.INVALID_ARGUMENT, "WECHAT_CODE_INVALID", 400),
    (grpc.StatusCode.PERMISSION_DENIED, "WECHAT_MISMATCH", 403),
])
def test_binding_refusals_keep_their_code_and_status(client: FlaskClient, clients, auth, rpc_error,
                                                     status: grpc.StatusCode, code: str, http: int) -> None:
    clients.user.BindPhone.error = rpc_error(status, "refused", ((CODE_KEY, code),))

    response = client.post("/api/v1/me/phone", json=BINDING, headers=auth)

    assert (response.status_code, response.get_json()["error"]["code"]) == (http, code)


# Addresses

ADDRESS_BODY = {"receiver_name": "张三", "receiver_phone": "13800138000", "province": "广东省", "city": "深圳市",
                "district": "南山区", "detail": "科技园 1 号", "is_default": True}
ADDRESS_REPLY = user_pb2.Address(id=5, user_id=42, receiver_name="张三", receiver_phone="13800138000",
                                 province="广东省", city="深圳市", district="南山区", detail="科技园 1 号",
                                 is_default=True)
ADDRESS_JSON = {"id": 5, "receiver_name": "张三", "receiver_phone": "138****8000", "province": "广东省",
                "city": "深圳市", "district": "南山区", "detail": "科技园 1 号", "is_default": True}


def test_adding_an_address_is_201_with_the_receivers_phone_masked(client: FlaskClient, clients, auth) -> None:
    clients.user.AddAddress.reply = ADDRESS_REPLY

    response = client.post("/api/v1/me/addresses", json=ADDRESS_BODY, headers=auth)

    assert (response.status_code, response.get_json()) == (201, ADDRESS_JSON)
    fields = {k: v for k, v in ADDRESS_BODY.items() if k != "is_default"}
    assert clients.user.AddAddress.calls[0].message == user_pb2.AddAddressRequest(
        fields=user_pb2.AddressFields(**fields), is_default=True)


@pytest.mark.parametrize(("change", "field"), [
    ({"receiver_phone": "1380013800"}, "receiver_phone"),
    ({"user_id": 7}, "user_id"),
    ({"id": 9}, "id"),
    ({"detail": ""}, "detail"),
    ({"is_default": "yes"}, "is_default"),
])
def test_a_malformed_address_is_400_naming_the_field(client: FlaskClient, clients, auth, change: dict,
                                                     field: str) -> None:
    response = client.post("/api/v1/me/addresses", json={**ADDRESS_BODY, **change}, headers=auth)

    assert (response.status_code, field in response.get_json()["error"]["details"]) == (400, True)
    assert clients.user.AddAddress.calls == []


@pytest.mark.parametrize(("province", "sent"), [("广东", "广东省"), ("新疆", "新疆维吾尔自治区"), ("澳门特别行政区", "澳门特别行政区")])
def test_an_address_province_is_sent_by_its_full_name(client: FlaskClient, clients, auth, province: str,
                                                      sent: str) -> None:
    clients.user.AddAddress.reply = ADDRESS_REPLY

    response = client.post("/api/v1/me/addresses", json={**ADDRESS_BODY, "province": province}, headers=auth)

    assert (response.status_code, clients.user.AddAddress.calls[0].message.fields.province) == (201, sent)


@pytest.mark.parametrize("province", ["", "广东 ", "Guangdong", "广东省深圳市"])
def test_an_address_province_naming_no_province_is_400(client: FlaskClient, clients, auth, province: str) -> None:
    response = client.post("/api/v1/me/addresses", json={**ADDRESS_BODY, "province": province}, headers=auth)

    assert (response.status_code, response.get_json()["error"]["details"], clients.user.AddAddress.calls) == (
        400, {"province": PROVINCE_RULE}, [])


def test_addresses_are_listed_as_a_page(client: FlaskClient, clients, auth) -> None:
    clients.user.ListAddresses.reply = user_pb2.ListAddressesResponse(addresses=[
        ADDRESS_REPLY, user_pb2.Address(id=4, receiver_phone="13900000000", province="北京市")])

    response = client.get("/api/v1/me/addresses?page=2&page_size=1", headers=auth)

    assert response.get_json() == {"items": [{
        "id": 4, "receiver_name": "", "receiver_phone": "139****0000", "province": "北京市", "city": "", "district": "",
        "detail": "", "is_default": False}], "page": 2, "page_size": 1, "total": 2}


def test_changing_an_address_passes_its_id(client: FlaskClient, clients, auth) -> None:
    clients.user.ChangeAddress.reply = ADDRESS_REPLY

    response = client.put("/api/v1/me/addresses/5", json=ADDRESS_BODY, headers=auth)

    assert (response.status_code, clients.user.ChangeAddress.calls[0].message.address_id) == (200, 5)


def test_another_users_address_is_404(client: FlaskClient, clients, auth, rpc_error) -> None:
    clients.user.DeleteAddress.error = rpc_error(grpc.StatusCode.NOT_FOUND, "no such address",
                                                 ((CODE_KEY, "ADDRESS_NOT_FOUND"),))

    response = client.delete("/api/v1/me/addresses/77", headers=auth)

    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "ADDRESS_NOT_FOUND")


def test_deleting_an_address_answers_its_id(client: FlaskClient, clients, auth) -> None:
    response = client.delete("/api/v1/me/addresses/5", headers=auth)

    assert (response.status_code, response.get_json()) == (200, {"id": 5, "deleted": True})
    assert clients.user.DeleteAddress.calls[0].message == user_pb2.DeleteAddressRequest(address_id=5)


# Identity

def test_verifying_answers_the_masked_identity(client: FlaskClient, clients, auth) -> None:
    clients.user.VerifyIdentity.reply = user_pb2.Verification(
        verified=True, real_name_masked="张*", id_number_masked="1101**********002X",
        verified_at=Timestamp(seconds=1_795_680_000))

    response = client.post("/api/v1/me/identity", json={"real_name": "张三", "id_number": "11010519491231002X"},
                           headers=auth)

    assert (response.status_code, response.get_json()) == (200, {
        "verified": True, "real_name": "张*", "id_number": "1101**********002X",
        "verified_at": "2026-11-26T08:00:00Z"})
    assert clients.user.VerifyIdentity.calls[0].message == user_pb2.VerifyIdentityRequest(
        real_name="张三", id_number="11010519491231002X")


def test_my_identity_when_not_verified(client: FlaskClient, clients, auth) -> None:
    response = client.get("/api/v1/me/identity", headers=auth)

    assert response.get_json() == {"verified": False, "real_name": None, "id_number": None, "verified_at": None}
    assert clients.user.GetVerification.calls[0].message == user_pb2.GetVerificationRequest(user_id=42)


@pytest.mark.parametrize("id_number", ["1101051949123100", "11010519491231002Y", "11010519491231002X1"])
def test_a_malformed_id_number_is_400_and_not_sent(client: FlaskClient, clients, auth, id_number: str) -> None:
    response = client.post("/api/v1/me/identity", json={"real_name": "张三", "id_number": id_number}, headers=auth)

    assert (response.status_code, list(response.get_json()["error"]["details"])) == (400, ["id_number"])
    assert clients.user.VerifyIdentity.calls == []


def test_an_id_number_verified_by_another_account_is_409(client: FlaskClient, clients, auth, rpc_error) -> None:
    clients.user.VerifyIdentity.error = rpc_error(grpc.StatusCode.ABORTED, "taken", ((CODE_KEY, "ID_NUMBER_TAKEN"),))

    response = client.post("/api/v1/me/identity", json={"real_name": "张三", "id_number": "11010519491231002X"},
                           headers=auth)

    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "ID_NUMBER_TAKEN")


def test_changing_an_address_without_is_default_leaves_the_default_alone(client: FlaskClient, clients, auth) -> None:
    clients.user.ChangeAddress.reply = ADDRESS_REPLY
    body = {k: v for k, v in ADDRESS_BODY.items() if k != "is_default"}

    client.put("/api/v1/me/addresses/5", json=body, headers=auth)

    assert clients.user.ChangeAddress.calls[0].message.HasField("is_default") is False


def test_a_new_address_without_is_default_asks_for_none(client: FlaskClient, clients, auth) -> None:
    clients.user.AddAddress.reply = ADDRESS_REPLY

    client.post("/api/v1/me/addresses", json={k: v for k, v in ADDRESS_BODY.items() if k != "is_default"},
                headers=auth)

    assert clients.user.AddAddress.calls[0].message.is_default is False


def viewed(product_id: int, seconds: int) -> user_pb2.ViewedProduct:
    return user_pb2.ViewedProduct(product_id=product_id, viewed_at=Timestamp(seconds=1_764_000_000 + seconds))


def test_history_shows_each_product_as_listed_and_null_for_one_no_longer_on_sale(client: FlaskClient, clients,
                                                                                  auth) -> None:
    clients.user.ListHistory.reply = user_pb2.ListHistoryResponse(products=[viewed(7, 30), viewed(5, 20),
                                                                            viewed(9, 10)])
    clients.product.SearchProducts.reply = product_pb2.SearchProductsResponse(total=1, items=[product_pb2.Product(
        id=5, name="保温杯", subtitle="316", images=["/media/catalog/cup.png"], price_fen=12_900,
        market_price_fen=15_900, sales=4, brand=product_pb2.Brand(id=2, name="象印"), category_id=4)])

    response = client.get("/api/v1/me/history?page=1&page_size=2", headers=auth)

    assert clients.product.SearchProducts.calls[0].message == product_pb2.SearchProductsRequest(ids=[7, 5], limit=2)
    assert (response.status_code, response.get_json()) == (200, {"items": [
        {"product_id": 7, "viewed_at": "2025-11-24T16:00:30Z", "product": None},
        {"product_id": 5, "viewed_at": "2025-11-24T16:00:20Z", "product": {
            "id": 5, "name": "保温杯", "subtitle": "316", "main_image": "/media/catalog/cup.png", "price_fen": 12_900,
            "market_price_fen": 15_900, "sales": 4, "brand": {"id": 2, "name": "象印"}, "category_id": 4}}],
        "page": 1, "page_size": 2, "total": 3})


def test_an_empty_history_asks_the_catalogue_nothing(client: FlaskClient, clients, auth) -> None:
    clients.user.ListHistory.reply = user_pb2.ListHistoryResponse()

    response = client.get("/api/v1/me/history", headers=auth)

    assert (response.get_json()["total"], clients.product.SearchProducts.calls) == (0, [])
