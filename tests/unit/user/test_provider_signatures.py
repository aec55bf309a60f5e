"""Request signing of the third-party adapters against the providers' published examples, and ID check digits."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.user.config import AliyunSmsSettings, RealNameSettings
from services.user.realname import RealNameChecker, gb11643_check_character, id_number_is_valid, tc3_signature
from services.user.sms import AliyunSms, percent_encode, rpc_signature, rpc_string_to_sign
from services.user.wechat import WechatSession

# Aliyun SMS "HTTP protocol and signature" example: AccessKey testId / testSecret.
ALIYUN_EXAMPLE = {
    "AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123", "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用", "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466", "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007", "TemplateParam": '{"customer":"test"}', "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
# Tencent Cloud API 3.0 "Signature v3" example (CVM DescribeInstances, POST).
TENCENT_EXAMPLE_PAYLOAD = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
TENCENT_EXAMPLE_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Host": "cvm.tencentcloudapi.com"}


def test_aliyun_signature_of_the_documented_example_is_the_documented_value() -> None:
    assert rpc_signature("GET", ALIYUN_EXAMPLE, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_aliyun_string_to_sign_sorts_and_encodes_twice() -> None:
    string_to_sign = rpc_string_to_sign("GET", {"b": "x y", "a": "1*2~"})

    assert string_to_sign == "GET&%2F&a%3D1%252A2~%26b%3Dx%2520y"


def test_aliyun_percent_encoding_keeps_only_unreserved_characters() -> None:
    assert percent_encode("aZ09-_.~ +*/:阿") == "aZ09-_.~%20%2B%2A%2F%3A%E9%98%BF"


def test_aliyun_signature_ignores_the_signature_parameter_itself() -> None:
    signed = {**ALIYUN_EXAMPLE, "Signature": "anything"}

    assert rpc_signature("GET", signed, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_aliyun_signature_changes_with_any_parameter() -> None:
    tampered = {**ALIYUN_EXAMPLE, "PhoneNumbers": "15300000002"}

    assert rpc_signature("GET", tampered, "testSecret") != "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_aliyun_sms_request_carries_every_common_parameter_and_a_valid_signature() -> None:
    sms = AliyunSms(AliyunSmsSettings(endpoint="https://dysmsapi.aliyuncs.com/", access_key_id="testId",
                                      access_key_secret="testSecret", sign_name="MiniMall", template_code="SMS_1",
                                      region_id="cn-hangzhou", timeout_seconds=5))

    params = sms.signed_params("13800138000", "123456", now=datetime(2026, 11, 29, 8, 0, 5, tzinfo=UTC), nonce="n-1")

    assert {k: v for k, v in params.items() if k != "Signature"} == {
        "AccessKeyId": "testId", "Action": "SendSms", "Format": "JSON", "PhoneNumbers": "13800138000",
        "RegionId": "cn-hangzhou", "SignName": "MiniMall", "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "n-1",
        "SignatureVersion": "1.0", "TemplateCode": "SMS_1", "TemplateParam": '{"code": "123456"}',
        "Timestamp": "2026-11-29T08:00:05Z", "Version": "2017-05-25"}
    assert params["Signature"] == rpc_signature("POST", params, "testSecret")


def test_tencent_tc3_signature_of_the_documented_example_is_the_documented_value() -> None:
    signature = tc3_signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", service="cvm", timestamp=1551113065,
                              headers=TENCENT_EXAMPLE_HEADERS, payload=TENCENT_EXAMPLE_PAYLOAD)

    assert signature == "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"


def test_tencent_tc3_signature_changes_with_the_payload() -> None:
    signature = tc3_signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", service="cvm", timestamp=1551113065,
                              headers=TENCENT_EXAMPLE_HEADERS, payload=TENCENT_EXAMPLE_PAYLOAD.replace(b"1", b"2"))

    assert signature != "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"


def test_real_name_request_signs_host_and_content_type_with_the_utc_date_scope() -> None:
    checker = RealNameChecker(RealNameSettings(endpoint="https://faceid.tencentcloudapi.com/", secret_id="AKIDtest",
                                               secret_key="key", timeout_seconds=5))

    headers, payload = checker.signed_request("张三", "11010519491231002X", timestamp=1551113065)

    signature = tc3_signature("key", service="faceid", timestamp=1551113065, payload=payload,
                              headers={"Content-Type": "application/json; charset=utf-8",
                                       "Host": "faceid.tencentcloudapi.com"})
    assert headers["Authorization"] == ("TC3-HMAC-SHA256 Credential=AKIDtest/2019-02-25/faceid/tc3_request, "
                                        f"SignedHeaders=content-type;host, Signature={signature}")
    assert (headers["X-TC-Action"], headers["X-TC-Version"], headers["X-TC-Timestamp"]) == (
        "IdCardVerification", "2018-03-01", "1551113065")
    assert payload == b'{"IdCard": "11010519491231002X", "Name": "\\u5f20\\u4e09"}'


def test_gb11643_check_character_of_the_standards_example_is_x() -> None:
    assert gb11643_check_character("11010519491231002") == "X"


@pytest.mark.parametrize("id_number", ["11010519491231002X", "110101200001010010", "440304199912311237",
                                       "320102198802294573"])  # the last one born on a leap day
def test_id_numbers_with_a_real_birth_date_and_the_right_check_character_are_valid(id_number: str) -> None:
    assert id_number_is_valid(id_number, today=date(2026, 11, 29))


@pytest.mark.parametrize("id_number", [
    "110105194912310021",  # wrong check character
    "11010519491231002x",  # lowercase x is not what the card shows
    "11010519491331002X",  # month 13
    "01010519491231002X",  # region cannot start with 0
    "1101051949123100",    # too short
    "11010518991231002X",  # born before 1900
])
def test_id_numbers_with_a_wrong_shape_date_or_check_character_are_invalid(id_number: str) -> None:
    assert not id_number_is_valid(id_number, today=date(2026, 11, 29))


def test_an_id_number_born_after_today_is_invalid() -> None:
    first17 = "11010520270101001"

    assert not id_number_is_valid(first17 + gb11643_check_character(first17), today=date(2026, 11, 29))


def test_a_wechat_session_never_shows_its_session_key() -> None:
    session = WechatSession("o-openid", None, "c2Vzc2lvbi1rZXk=")

    assert "c2Vzc2lvbi1rZXk=" not in repr(session)
    assert tuple(session) == ("o-openid", None, "c2Vzc2lvbi1rZXk=")
