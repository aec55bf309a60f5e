"""mask_pii: which phone and ID numbers a log line gives away masked, and which digits it leaves alone."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from services.common.logs import JsonFormatter, MaskPii, mask_pii

PSYCOPG_UNIQUE_VIOLATION = (
    'duplicate key value violates unique constraint "users_phone_key"\n'
    "DETAIL:  Key (phone)=(13812345678) already exists."
)


@pytest.mark.parametrize(("text", "masked"), [
    pytest.param("13812345678", "138****5678", id="bare"),
    pytest.param("phone=13812345678", "phone=138****5678", id="key-value"),
    pytest.param("(13812345678)", "(138****5678)", id="parenthesised"),
    pytest.param('{"phone": "13812345678"}', '{"phone": "138****5678"}', id="json-string"),
    pytest.param("tel:13812345678", "tel:138****5678", id="tel-uri"),
    pytest.param("user_13812345678", "user_138****5678", id="after-underscore"),
    pytest.param("手机13812345678已注册", "手机138****5678已注册", id="inside-chinese-text"),
    pytest.param("call 19912345678.", "call 199****5678.", id="before-full-stop"),
    pytest.param("138 1234 5678", "138****5678", id="space-groups"),
    pytest.param("138-1234-5678", "138****5678", id="dash-groups"),
    pytest.param("+8613812345678", "+86138****5678", id="plus-86-glued"),
    pytest.param("+86 13812345678", "+86 138****5678", id="plus-86-space"),
    pytest.param("+86 138 1234 5678", "+86 138****5678", id="plus-86-space-groups"),
    pytest.param("+86-138-1234-5678", "+86-138****5678", id="plus-86-dash-groups"),
    pytest.param("86-138-1234-5678", "86-138****5678", id="86-dash-groups"),
    pytest.param("8613812345678", "86138****5678", id="86-glued"),
    pytest.param("008613812345678", "0086138****5678", id="0086-glued"),
    pytest.param("0086 13812345678", "0086 138****5678", id="0086-space"),
    pytest.param(r'"exc": "phones:\n13812345678"', r'"exc": "phones:\n138****5678"', id="after-json-escaped-newline"),
    pytest.param(r'"msg": "a\t13812345678"', r'"msg": "a\t138****5678"', id="after-json-escaped-tab"),
    pytest.param(r'"msg": "a\b13812345678"', r'"msg": "a\b138****5678"', id="after-json-escaped-backspace"),
    pytest.param(r'"msg": "a\f13812345678"', r'"msg": "a\f138****5678"', id="after-json-escaped-form-feed"),
    pytest.param(r'"msg": "a\u000b13812345678"', r'"msg": "a\u000b138****5678"', id="after-json-unicode-escape"),
    pytest.param(r"b'\n\x0b13812345678'", r"b'\n\x0b138****5678'", id="after-hex-escape-in-bytes-repr"),
])
def test_a_mobile_number_standing_alone_keeps_only_first_three_and_last_four(text: str, masked: str) -> None:
    assert mask_pii(text) == masked


@pytest.mark.parametrize(("text", "masked"), [
    pytest.param("11010519491231002X", "1101**********002X", id="x-check-digit"),
    pytest.param("11010519491231002x", "1101**********002x", id="lowercase-x-check-digit"),
    pytest.param("110105199003070018", "1101**********0018", id="digit-check-digit"),
    pytest.param("id_card=440301200012310012", "id_card=4403**********0012", id="key-value-born-2000s"),
    pytest.param('{"id_number": "11010519491231002X"}', '{"id_number": "1101**********002X"}', id="json-string"),
    pytest.param("身份证11010519491231002X。", "身份证1101**********002X。", id="inside-chinese-text"),
    pytest.param("911156198001010015", "9111**********0015", id="foreigners-permanent-residence-card"),
    pytest.param("110105199002290012", "1101**********0012", id="feb-29-of-a-common-year-still-fits-the-shape"),
    pytest.param(r'"exc": "id:\n11010519491231002X"', r'"exc": "id:\n1101**********002X"', id="after-json-escaped-newline"),
    pytest.param(r'"msg": "id\b11010519491231002X"', r'"msg": "id\b1101**********002X"', id="after-json-escaped-backspace"),
    pytest.param(r'"msg": "id\f11010519491231002X"', r'"msg": "id\f1101**********002X"', id="after-json-escaped-form-feed"),
    pytest.param(r'"msg": "id\u001211010519491231002X"', r'"msg": "id\u00121101**********002X"',
                 id="after-json-unicode-escape"),
    pytest.param(r"b'\x12\x1211010519491231002X'", r"b'\x12\x121101**********002X'", id="after-hex-escape-in-bytes-repr"),
])
def test_an_id_number_standing_alone_keeps_only_first_four_and_last_four(text: str, masked: str) -> None:
    assert mask_pii(text) == masked


@pytest.mark.parametrize("text", [
    pytest.param("3f2b8c1e-9d4a-4c6b-8e2f-a13812345678", id="uuid4-digits-after-a-letter"),
    pytest.param("3f2b8c1e-9d4a-4c6b-8e2f-13812345678b", id="uuid4-digits-before-a-letter"),
    pytest.param("9f86d081e13812345678ab04c2e1d3f6", id="hex32-phone-shaped-run"),
    pytest.param("c0ffee11010519491231002Xdeadbeef", id="hex32-id-shaped-run"),
    pytest.param("req-a1b2c3de13812345678f", id="request-id-token"),
    pytest.param("SKU13812345678", id="sku-code"),
    pytest.param(r"\u00b13812345678", id="json-unicode-escape-taking-the-first-digit"),
    pytest.param(r"\xb13812345678", id="hex-escape-taking-the-first-digit"),
    pytest.param("0x0b13812345678", id="hex-literal-not-an-escape"),
    pytest.param("2026112712345678901", id="order-number-19-digits"),
    pytest.param("2026112713812345678", id="order-number-ending-phone-shaped"),
    pytest.param("13812345678202611270", id="order-number-starting-phone-shaped"),
    pytest.param("211010519491231002X", id="19-digits-ending-id-shaped"),
    pytest.param("11010519491231002X1", id="19-digits-starting-id-shaped"),
    pytest.param("123456789012345678", id="18-digits-year-7890"),
    pytest.param("110105194913310021", id="18-digits-month-13"),
    pytest.param("110105194912320021", id="18-digits-day-32"),
    pytest.param("110105189001010021", id="18-digits-year-1890"),
    pytest.param("010105199001010021", id="18-digits-region-starting-0"),
    pytest.param("110105491231002", id="old-15-digit-id-number"),
    pytest.param("1795712145923", id="epoch-millis"),
    pytest.param("138123456789", id="12-digits"),
    pytest.param("1381234567", id="10-digits"),
    pytest.param("12812345678", id="second-digit-2"),
    pytest.param("138 1234-5678", id="mixed-separators"),
    pytest.param("138 12345678", id="3-8-groups"),
    pytest.param("138****5678", id="already-masked-phone"),
    pytest.param("1101**********002X", id="already-masked-id-number"),
    pytest.param("用户8000 已注册", id="short-number"),
])
def test_digits_that_are_not_a_standalone_phone_or_id_number_stay_as_they_are(text: str) -> None:
    assert mask_pii(text) == text


def test_psycopg_unique_violation_text_is_masked() -> None:
    assert mask_pii(PSYCOPG_UNIQUE_VIOLATION) == (
        'duplicate key value violates unique constraint "users_phone_key"\n'
        "DETAIL:  Key (phone)=(138****5678) already exists."
    )


def test_every_phone_and_id_number_in_one_line_is_masked_and_the_ids_around_them_are_not() -> None:
    line = ("order 2026112712345678901 req 3f2b8c1e-9d4a-4c6b-8e2f-a13812345678: "
            "Key (phone, id_number)=(13812345678, 11010519491231002X) exists; backup +86 139 8765 4321")

    assert mask_pii(line) == (
        "order 2026112712345678901 req 3f2b8c1e-9d4a-4c6b-8e2f-a13812345678: "
        "Key (phone, id_number)=(138****5678, 1101**********002X) exists; backup +86 139****4321")


def test_json_log_line_masks_pii_in_message_extra_fields_and_traceback(request_id: str) -> None:
    try:
        raise RuntimeError(PSYCOPG_UNIQUE_VIOLATION)
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("user.db", logging.ERROR, __file__, 1, "register %s failed", ("+86 138 1234 5678",),
                               exc_info)
    record.id_number = "11010519491231002X"
    record.order_no = "2026112712345678901"
    record.trace_id = "9f86d081e13812345678ab04c2e1d3f6"

    entry = json.loads(JsonFormatter("user").format(record))

    assert {k: entry[k] for k in ("msg", "request_id", "id_number", "order_no", "trace_id")} == {
        "msg": "register +86 138****5678 failed",
        "request_id": "req-test-1",
        "id_number": "1101**********002X",
        "order_no": "2026112712345678901",
        "trace_id": "9f86d081e13812345678ab04c2e1d3f6",
    }
    assert entry["exc"].endswith("RuntimeError: " + PSYCOPG_UNIQUE_VIOLATION.replace("13812345678", "138****5678"))


def test_masking_twice_changes_nothing_more() -> None:
    line = "13812345678 +86 139 8765 4321 11010519491231002X"

    assert mask_pii(mask_pii(line)) == mask_pii(line) == "138****5678 +86 139****4321 1101**********002X"


def test_the_filter_masks_a_records_message_and_traceback_for_a_plain_formatter() -> None:
    record = logging.LogRecord("gunicorn.error", logging.ERROR, __file__, 1, "Error handling request %s",
                               ("/api/v1/admin/users?phone=13800138000",), None)
    try:
        raise ValueError("no user with ID number 110101199003078515")
    except ValueError:
        record.exc_info = sys.exc_info()

    kept = MaskPii().filter(record)

    text = logging.Formatter().format(record)
    assert kept and "Error handling request /api/v1/admin/users?phone=138****8000" in text
    assert "ID number 1101**********8515" in text and "13800138000" not in text and "199003078" not in text
