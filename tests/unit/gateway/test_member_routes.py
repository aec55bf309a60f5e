"""Member routes: what is asked of the member service, the JSON made of its reply, roles and Idempotency-Key."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.member.v1 import member_pb2 as pb

from services.common.auth import OWN_REQUEST
from services.common.errors import Conflict, DomainError, ErrorKind, Forbidden
from services.common.grpc_server import to_grpc
from services.common.idempotency import key_reused
from services.member.domain import recharge_not_found, template_disabled, template_not_found, withdrawal_not_found

JOINED = Timestamp(seconds=1_795_000_000)


def test_get_member_answers_the_documented_payload(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.GetMember.reply = pb.GetMemberResponse(member=pb.Member(
        member_no="M1", level="gold", discount_bp=9_500, discount_percent=95, points_multiplier_percent=150, points=120,
        balance_fen=4_000, pending_fen=6_000, coupons_available=2, total_spend_fen=500_000, channel="self",
        joined_at=JOINED, invite_code="K7M2Q9XA", bonus_fen=5_000, points_owed=40))

    response = client.get("/api/v1/member", headers=bearer())

    assert (response.status_code, response.get_json()) == (200, {
        "member_no": "M1", "level": "gold", "discount_rate": 0.95, "points_multiplier": 1.5, "points": 120,
        "balance_fen": 4_000, "pending_fen": 6_000, "coupons_available": 2, "total_spend_fen": 500_000,
        "channel": "self", "joined_at": "2026-11-18T11:06:40Z", "plan": None, "invite_code": "K7M2Q9XA",
        "bonus_fen": 5_000, "points_owed": 40})


def test_the_wallet_answers_any_shopper_its_three_balances(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.GetWallet.reply = pb.Wallet(balance_fen=10_000, pending_fen=2_000, bonus_fen=500)

    response = client.get("/api/v1/member/wallet", headers=bearer())

    assert ([c.message for c in clients.member.GetWallet.calls], clients.member.GetMember.calls) == (
        [pb.GetWalletRequest()], [])
    assert (response.status_code, response.get_json()) == (200, {"balance_fen": 10_000, "pending_fen": 2_000,
                                                                 "bonus_fen": 500})


def test_a_gold_member_with_plus_is_shown_the_exact_rate_not_the_floored_percent(client: FlaskClient, clients,
                                                                                  bearer: Callable) -> None:
    clients.member.GetMember.reply = pb.GetMemberResponse(member=pb.Member(
        member_no="M1", level="gold", discount_bp=9_025, discount_percent=90, joined_at=JOINED,
        plan=pb.MemberPlan(id=1, name="PLUS monthly", expires_at=JOINED)))

    assert client.get("/api/v1/member", headers=bearer()).get_json()["discount_rate"] == 0.9025


def test_a_member_service_older_than_basis_points_still_shows_its_percent_as_the_rate(client: FlaskClient, clients,
                                                                                      bearer: Callable) -> None:
    clients.member.GetMember.reply = pb.GetMemberResponse(member=pb.Member(
        member_no="M1", level="silver", discount_percent=98, joined_at=JOINED))  # no discount_bp: a rolling deploy

    assert client.get("/api/v1/member", headers=bearer()).get_json()["discount_rate"] == 0.98


def test_signup_passes_channel_and_invite_code(client: FlaskClient, clients, bearer: Callable) -> None:
    client.post("/api/v1/member/signup", json={"channel": "invitation", "invite_code": "ABCD1234"}, headers=bearer())

    assert [c.message for c in clients.member.SignUp.calls] == [
        pb.SignUpRequest(channel="invitation", invite_code="ABCD1234")]


def test_signup_refuses_the_purchase_channel_which_the_shop_records_itself(client: FlaskClient, clients,
                                                                          bearer: Callable) -> None:
    response = client.post("/api/v1/member/signup", json={"channel": "purchase"}, headers=bearer())

    error = response.get_json()["error"]
    assert (response.status_code, error["code"], list(error["details"]), clients.member.SignUp.calls) == (
        400, "INVALID_REQUEST", ["channel"], [])


def test_the_ledger_is_a_page_of_entries_in_fen_named_fen(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.ListWalletEntries.reply = pb.ListEntriesResponse(total=41, entries=[pb.LedgerEntry(
        id=7, account="available", amount=-6_000, balance_after=4_000, kind="withdrawal_requested",
        reference="W1", created_at=JOINED)])

    response = client.get("/api/v1/member/ledger?page=3&page_size=20", headers=bearer())

    assert clients.member.ListWalletEntries.calls[0].message == pb.ListEntriesRequest(offset=40, limit=20)
    assert response.get_json() == {"items": [{
        "id": 7, "account": "available", "amount_fen": -6_000, "balance_after_fen": 4_000,
        "amount": -6_000, "balance_after": 4_000, "kind": "withdrawal_requested",
        "reference": "W1", "created_at": "2026-11-18T11:06:40Z"}], "page": 3, "page_size": 20, "total": 41}


def test_the_points_history_is_a_page_of_points_entries_not_wallet_ones(client: FlaskClient, clients,
                                                                       bearer: Callable) -> None:
    clients.member.ListPointsEntries.reply = pb.ListEntriesResponse(total=1, entries=[pb.LedgerEntry(
        id=3, account="points", amount=120, balance_after=120, kind="order_paid", reference="O1", created_at=JOINED)])

    response = client.get("/api/v1/member/points?page=1&page_size=10", headers=bearer())

    assert (clients.member.ListPointsEntries.calls[0].message, clients.member.ListWalletEntries.calls) == (
        pb.ListEntriesRequest(offset=0, limit=10), [])
    assert (response.get_json()["items"][0]["amount"], response.get_json()["total"]) == (120, 1)


def test_a_withdrawal_needs_an_idempotency_key(client: FlaskClient, clients, bearer: Callable) -> None:
    response = client.post("/api/v1/member/withdrawals", json={"amount_fen": 6_000}, headers=bearer())

    assert (response.status_code, response.get_json()["error"]["code"], clients.member.RequestWithdrawal.calls) == (
        400, "IDEMPOTENCY_KEY_REQUIRED", [])


def test_a_malformed_idempotency_key_is_refused(client: FlaskClient, clients, bearer: Callable) -> None:
    response = client.post("/api/v1/member/withdrawals", json={"amount_fen": 6_000},
                           headers={**bearer(), "Idempotency-Key": "x" * 129})

    assert (response.status_code, response.get_json()["error"]["code"]) == (400, "IDEMPOTENCY_KEY_INVALID")


def test_a_withdrawal_passes_the_key_and_answers_201(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.RequestWithdrawal.reply = pb.Withdrawal(id=3, withdrawal_no="W3", amount_fen=6_000,
                                                           status="PENDING_REVIEW", created_at=JOINED,
                                                           bonus_forfeited_fen=600, payout_fen=5_900)

    response = client.post("/api/v1/member/withdrawals", json={"amount_fen": 6_000},
                           headers={**bearer(), "Idempotency-Key": "abc-123"})

    assert clients.member.RequestWithdrawal.calls[0].message == pb.RequestWithdrawalRequest(
        amount_fen=6_000, idempotency_key="abc-123")
    assert (response.status_code, response.get_json()) == (201, {
        "id": 3, "withdrawal_no": "W3", "user_id": 0, "status": "PENDING_REVIEW", "amount_fen": 6_000,
        "bonus_forfeited_fen": 600, "payout_fen": 5_900, "shopper_reason": "", "created_at": "2026-11-18T11:06:40Z",
        "decided_at": None, "awaits_shopper": False, "wx_transfer_confirm": None})


def test_only_finance_reaches_the_withdrawal_decision(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.DecideWithdrawal.reply = pb.Withdrawal(id=3, withdrawal_no="W3", amount_fen=6_000,
                                                          status="PAID", created_at=JOINED, decided_at=JOINED)
    url, body = "/api/v1/admin/withdrawals/3/decision", {"approve": True, "note": "ok"}

    refused = [client.post(url, json=body, headers=bearer(roles)).status_code for roles in ("", "admin", "operator")]
    allowed = client.post(url, json=body, headers=bearer("finance"))

    assert (refused, allowed.status_code, allowed.get_json()["status"]) == ([403, 403, 403], 200, "PAID")
    assert [c.message for c in clients.member.DecideWithdrawal.calls] == [
        pb.DecideWithdrawalRequest(withdrawal_id=3, approve=True, note="ok")]


INTERNAL = "internal: flagged by risk team, linked to account 42"
REJECTED = pb.Withdrawal(id=1, withdrawal_no="W1", user_id=101, amount_fen=6_000, status="REJECTED", created_at=JOINED,
                         decided_at=JOINED, note=INTERNAL, shopper_reason="your account is under review")


def test_a_rejection_passes_finances_note_and_what_the_shopper_reads_and_answers_staff_both(
        client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.DecideWithdrawal.reply = REJECTED

    response = client.post("/api/v1/admin/withdrawals/1/decision", headers=bearer("finance"), json={
        "approve": False, "note": INTERNAL, "shopper_reason": "your account is under review"})

    assert [c.message for c in clients.member.DecideWithdrawal.calls] == [pb.DecideWithdrawalRequest(
        withdrawal_id=1, approve=False, note=INTERNAL, shopper_reason="your account is under review")]
    assert (response.status_code, response.get_json()["note"], response.get_json()["shopper_reason"]) == (
        200, INTERNAL, "your account is under review")


def test_a_shopper_reason_longer_than_200_characters_is_refused(client: FlaskClient, clients,
                                                                bearer: Callable) -> None:
    response = client.post("/api/v1/admin/withdrawals/1/decision", headers=bearer("finance"),
                           json={"approve": False, "shopper_reason": "x" * 201})

    assert (response.status_code, clients.member.DecideWithdrawal.calls) == (400, [])


def test_the_shopper_reads_what_finance_wrote_for_them_and_never_their_note(client: FlaskClient, clients,
                                                                             bearer: Callable) -> None:
    clients.member.GetMyWithdrawal.reply = REJECTED  # were the member service to send the note, it stays unsaid
    clients.member.ListMyWithdrawals.reply = pb.ListWithdrawalsResponse(total=1, withdrawals=[REJECTED])

    one = client.get("/api/v1/member/withdrawals/1", headers=bearer()).get_json()
    listed = client.get("/api/v1/member/withdrawals", headers=bearer()).get_json()["items"][0]

    assert [("note" in body, body["shopper_reason"]) for body in (one, listed)] == [
        (False, "your account is under review")] * 2
    assert INTERNAL not in str(one) + str(listed)


def test_an_unknown_withdrawal_is_404(client: FlaskClient, clients, bearer: Callable, rpc_error) -> None:
    status, message, trailers = to_grpc(withdrawal_not_found())
    clients.member.DecideWithdrawal.error = rpc_error(status, message, trailers)

    response = client.post("/api/v1/admin/withdrawals/99/decision", json={"approve": False},
                           headers=bearer("finance"))

    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "WITHDRAWAL_NOT_FOUND")


def test_a_coupon_template_is_created_by_an_operator(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.CreateCouponTemplate.reply = pb.CouponTemplate(
        id=5, name="15% off", kind="percent", percent_off=15, cap_fen=2_000, total=100, per_user_limit=1,
        valid_from=JOINED, valid_to=Timestamp(seconds=1_796_000_000), category_ids=[3])

    response = client.post("/api/v1/admin/coupons", headers=bearer("operator"), json={
        "name": "15% off", "kind": "percent", "percent_off": 15, "cap_fen": 2_000, "total": 100,
        "valid_from": "2026-11-18T19:06:40+08:00", "valid_to": "2026-11-30T00:00:00Z", "category_ids": [3]})

    sent = clients.member.CreateCouponTemplate.calls[0].message
    assert (sent.valid_from.seconds, sent.percent_off, list(sent.category_ids)) == (1_795_000_000, 15, [3])
    assert (response.status_code, response.get_json()["id"], response.get_json()["issued"]) == (201, 5, 0)


def test_a_coupon_template_create_passes_its_idempotency_key_and_sends_none_without_the_header(
        client: FlaskClient, clients, bearer: Callable, rpc_error) -> None:
    clients.member.CreateCouponTemplate.reply = pb.CouponTemplate(id=5, name="5 yuan off", kind="fixed")
    body = {"name": "5 yuan off", "kind": "fixed", "amount_fen": 500, "total": 100,
            "valid_from": "2026-11-18T19:06:40+08:00", "valid_to": "2026-11-30T00:00:00Z"}

    keyed = client.post("/api/v1/admin/coupons", headers={**bearer("operator"), "Idempotency-Key": "form-1"},
                        json=body)
    unkeyed = client.post("/api/v1/admin/coupons", headers=bearer("operator"), json=body)
    status, message, trailers = to_grpc(key_reused())
    clients.member.CreateCouponTemplate.error = rpc_error(status, message, trailers)
    reused = client.post("/api/v1/admin/coupons", headers={**bearer("operator"), "Idempotency-Key": "form-1"},
                         json={**body, "amount_fen": 600})

    assert [c.message.idempotency_key for c in clients.member.CreateCouponTemplate.calls] == [
        "form-1", "", "form-1"]
    assert [r.status_code for r in (keyed, unkeyed, reused)] == [201, 201, 409]
    assert reused.get_json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_a_shopper_cannot_create_coupon_templates_or_audit_the_ledger(client: FlaskClient, clients,
                                                                      bearer: Callable) -> None:
    audit = client.get("/api/v1/admin/ledger-audit", headers=bearer())
    create = client.post("/api/v1/admin/coupons", headers=bearer(), json={})

    assert (audit.status_code, create.status_code, clients.member.CheckLedgers.calls) == (403, 403, [])


def test_the_ledger_audit_lists_mismatches_for_finance_a_range_at_a_time(client: FlaskClient, clients,
                                                                         bearer: Callable) -> None:
    clients.member.CheckLedgers.reply = pb.CheckLedgersResponse(accounts_checked=9, mismatches=[pb.LedgerMismatch(
        account_id=4, user_id=101, account="available", balance=10_001, entries_sum=10_000)],
        next_after_account_id=12)

    response = client.get("/api/v1/admin/ledger-audit?after_account_id=3&limit=9", headers=bearer("finance"))
    clients.member.CheckLedgers.reply = pb.CheckLedgersResponse(accounts_checked=2)
    last = client.get("/api/v1/admin/ledger-audit?after_account_id=12", headers=bearer("finance"))

    assert [call.message for call in clients.member.CheckLedgers.calls] == [
        pb.CheckLedgersRequest(after_account_id=3, limit=9), pb.CheckLedgersRequest(after_account_id=12, limit=10_000)]
    assert response.get_json() == {"accounts_checked": 9, "mismatches": [{
        "account_id": 4, "user_id": 101, "account": "available", "balance": 10_001, "entries_sum": 10_000}],
        "next_after_account_id": 12}
    assert last.get_json() == {"accounts_checked": 2, "mismatches": [], "next_after_account_id": None}


def test_another_users_coupon_claim_error_passes_through_as_its_status(client: FlaskClient, clients,
                                                                       bearer: Callable, rpc_error) -> None:
    clients.member.ClaimCoupon.error = rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "sold out",
                                                 (("error-code", "COUPON_SOLD_OUT"),))

    response = client.post("/api/v1/member/coupons/claim", json={"template_id": 5}, headers=bearer())

    assert response.status_code == 422


def test_finance_lists_withdrawals_to_review(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.ListWithdrawals.reply = pb.ListWithdrawalsResponse(total=1, withdrawals=[pb.Withdrawal(
        id=3, withdrawal_no="W3", user_id=101, amount_fen=6_000, status="PENDING_REVIEW", created_at=JOINED)])

    shopper = client.get("/api/v1/admin/withdrawals", headers=bearer())
    response = client.get("/api/v1/admin/withdrawals?status=PENDING_REVIEW", headers=bearer("finance"))

    assert clients.member.ListWithdrawals.calls[0].message == pb.ListWithdrawalsRequest(
        status="PENDING_REVIEW", offset=0, limit=20)
    assert (shopper.status_code, response.get_json()["total"], response.get_json()["items"][0]["user_id"]) == (
        403, 1, 101)


def test_a_shopper_pages_through_their_own_withdrawals(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.ListMyWithdrawals.reply = pb.ListWithdrawalsResponse(total=21, withdrawals=[pb.Withdrawal(
        id=3, withdrawal_no="W3", user_id=101, amount_fen=6_000, status="PAID", created_at=JOINED)])

    response = client.get("/api/v1/member/withdrawals?page=2&page_size=10", headers=bearer())

    assert clients.member.ListMyWithdrawals.calls[0].message == pb.ListWithdrawalsRequest(offset=10, limit=10)
    body = response.get_json()
    assert (body["page"], body["total"], [(w["withdrawal_no"], w["status"]) for w in body["items"]]) == (
        2, 21, [("W3", "PAID")])


AWAITING = pb.Withdrawal(id=3, withdrawal_no="W3", user_id=101, amount_fen=6_000, payout_fen=6_000, status="PAYING",
                         created_at=JOINED, awaits_shopper=True, wx_transfer_confirm=pb.WxTransferConfirm(
                             mch_id="1900000109", app_id="wx-minimall", package="ABBQO+oYAAAB"))


def test_a_shopper_is_given_what_confirms_the_wechat_transfer_of_their_withdrawal(client: FlaskClient, clients,
                                                                                  bearer: Callable) -> None:
    clients.member.GetMyWithdrawal.reply = AWAITING
    clients.member.ListMyWithdrawals.reply = pb.ListWithdrawalsResponse(total=1, withdrawals=[AWAITING])

    one = client.get("/api/v1/member/withdrawals/3", headers=bearer())
    listed = client.get("/api/v1/member/withdrawals", headers=bearer())

    assert clients.member.GetMyWithdrawal.calls[0].message == pb.GetMyWithdrawalRequest(withdrawal_id=3)
    confirm = {"mch_id": "1900000109", "app_id": "wx-minimall", "package": "ABBQO+oYAAAB"}
    assert (one.status_code, one.get_json()["awaits_shopper"], one.get_json()["wx_transfer_confirm"]) == (
        200, True, confirm)
    assert listed.get_json()["items"][0]["wx_transfer_confirm"] == confirm


def test_a_withdrawal_not_awaiting_the_shopper_has_no_transfer_to_confirm(client: FlaskClient, clients,
                                                                         bearer: Callable) -> None:
    clients.member.GetMyWithdrawal.reply = pb.Withdrawal(id=3, withdrawal_no="W3", user_id=101, amount_fen=6_000,
                                                         status="PAID", created_at=JOINED)

    body = client.get("/api/v1/member/withdrawals/3", headers=bearer()).get_json()

    assert (body["status"], body["awaits_shopper"], body["wx_transfer_confirm"]) == ("PAID", False, None)


def test_another_shoppers_withdrawal_is_not_found(client: FlaskClient, clients, bearer: Callable, rpc_error) -> None:
    status, message, trailers = to_grpc(withdrawal_not_found())
    clients.member.GetMyWithdrawal.error = rpc_error(status, message, trailers)

    response = client.get("/api/v1/member/withdrawals/3", headers=bearer())

    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "WITHDRAWAL_NOT_FOUND")


def test_staff_see_a_withdrawal_awaits_the_shopper_but_never_what_confirms_it(client: FlaskClient, clients,
                                                                             bearer: Callable) -> None:
    clients.member.ListWithdrawals.reply = pb.ListWithdrawalsResponse(total=1, withdrawals=[AWAITING])

    item = client.get("/api/v1/admin/withdrawals", headers=bearer("finance")).get_json()["items"][0]

    assert (item["awaits_shopper"], "wx_transfer_confirm" in item) == (True, False)


def test_plans_are_listed_with_their_discount_rate(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.ListPlans.reply = pb.ListPlansResponse(plans=[pb.Plan(id=1, name="PLUS monthly", price_fen=1_500,
                                                                         days=31, discount_percent=95)])

    response = client.get("/api/v1/member/plans", headers=bearer())

    assert response.get_json() == {"items": [{"id": 1, "name": "PLUS monthly", "price_fen": 1_500, "days": 31,
                                              "discount_rate": 0.95}]}


def test_subscribing_needs_an_idempotency_key_and_shows_the_plan(client: FlaskClient, clients,
                                                                 bearer: Callable) -> None:
    clients.member.SubscribePlan.reply = pb.GetMemberResponse(member=pb.Member(
        member_no="M1", level="normal", discount_bp=9_500, discount_percent=95, points_multiplier_percent=100,
        joined_at=JOINED,
        plan=pb.MemberPlan(id=1, name="PLUS monthly", expires_at=JOINED)))

    missing = client.post("/api/v1/member/plans/1/subscribe", headers=bearer())
    response = client.post("/api/v1/member/plans/1/subscribe", headers={**bearer(), "Idempotency-Key": "p-1"})

    assert (missing.status_code, clients.member.SubscribePlan.calls[0].message) == (
        400, pb.SubscribePlanRequest(plan_id=1, idempotency_key="p-1"))
    assert (response.get_json()["plan"], response.get_json()["discount_rate"]) == (
        {"id": 1, "name": "PLUS monthly", "expires_at": "2026-11-18T11:06:40Z"}, 0.95)


# recharges

DEADLINE = Timestamp(seconds=1_795_001_800)


def recharge(**changes: object) -> pb.Recharge:
    fields: dict = {"id": 4, "recharge_no": "R4", "amount_fen": 50_000, "channel": "alipay", "status": "PENDING",
                    "created_at": JOINED, "pay_deadline": DEADLINE}
    return pb.Recharge(**{**fields, **changes})


def test_a_recharge_needs_an_idempotency_key(client: FlaskClient, clients, bearer: Callable) -> None:
    response = client.post("/api/v1/member/recharges", json={"amount_fen": 50_000, "channel": "alipay"},
                           headers=bearer())

    assert (response.status_code, response.get_json()["error"]["code"], clients.member.CreateRecharge.calls) == (
        400, "IDEMPOTENCY_KEY_REQUIRED", [])


def test_a_recharge_passes_the_key_and_answers_its_payment_and_status(client: FlaskClient, clients,
                                                                      bearer: Callable) -> None:
    clients.member.CreateRecharge.reply = recharge(payment={"out_trade_no": "R4", "order_string": "app_id=1"})

    response = client.post("/api/v1/member/recharges", json={"amount_fen": 50_000, "channel": "alipay"},
                           headers={**bearer(), "Idempotency-Key": "tap-1"})

    assert clients.member.CreateRecharge.calls[0].message == pb.CreateRechargeRequest(
        amount_fen=50_000, channel="alipay", idempotency_key="tap-1")
    assert (response.status_code, response.get_json()) == (201, {
        "id": 4, "recharge_no": "R4", "status": "PENDING", "channel": "alipay", "amount_fen": 50_000,
        "bonus_fen": 0, "created_at": "2026-11-18T11:06:40Z", "pay_deadline": "2026-11-18T11:36:40Z",
        "paid_at": None, "payment": {"out_trade_no": "R4", "order_string": "app_id=1"}})


def test_a_reused_recharge_key_is_a_409(client: FlaskClient, clients, bearer: Callable, rpc_error) -> None:
    status, message, trailers = to_grpc(key_reused())
    clients.member.CreateRecharge.error = rpc_error(status, message, trailers)

    response = client.post("/api/v1/member/recharges", json={"amount_fen": 60_000, "channel": "alipay"},
                           headers={**bearer(), "Idempotency-Key": "tap-1"})

    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")


@pytest.mark.parametrize(("path", "body", "rpc"), [
    ("recharges", {"amount_fen": 50_000, "channel": "alipay"}, "CreateRecharge"),
    ("withdrawals", {"amount_fen": 6_000}, "RequestWithdrawal"),
])
def test_the_11th_recharge_or_withdrawal_of_one_shopper_within_a_minute_is_refused_and_other_shoppers_go_on(
        client: FlaskClient, clients, bearer: Callable, path: str, body: dict, rpc: str) -> None:
    getattr(clients.member, rpc).reply = recharge() if rpc == "CreateRecharge" else pb.Withdrawal(
        id=3, withdrawal_no="W3", amount_fen=6_000, status="PENDING_REVIEW", created_at=JOINED)

    def start(user_id: int, n: int, ip: str = "203.0.113.7"):  # type: ignore[no-untyped-def]
        return client.post(f"/api/v1/member/{path}", json=body,
                           headers={**bearer(user_id=user_id), "Idempotency-Key": f"k-{user_id}-{n}"},
                           environ_base={"REMOTE_ADDR": ip})

    mine = [start(42, n, ip=f"198.51.100.{n}") for n in range(11)]  # from other addresses: counted per shopper
    theirs = start(43, 0)

    assert [r.status_code for r in mine] == [201] * 10 + [429]
    assert (mine[-1].get_json()["error"]["code"], theirs.status_code) == ("RATE_LIMITED", 201)
    assert len(getattr(clients.member, rpc).calls) == 11  # the refused one never reached the member service


def test_too_many_pending_recharges_is_a_422_with_how_many(client: FlaskClient, clients, bearer: Callable,
                                                           rpc_error) -> None:
    status, message, trailers = to_grpc(DomainError("TOO_MANY_PENDING_RECHARGES", "you have 3 recharges awaiting "
                                                    "payment", details={"pending_recharges": 3, "limit": 3}))
    clients.member.CreateRecharge.error = rpc_error(status, message, trailers)

    response = client.post("/api/v1/member/recharges", json={"amount_fen": 50_000, "channel": "alipay"},
                           headers={**bearer(), "Idempotency-Key": "tap-4"})

    error = response.get_json()["error"]
    assert (response.status_code, error["code"], error["details"]) == (
        422, "TOO_MANY_PENDING_RECHARGES", {"pending_recharges": 3, "limit": 3})


def test_a_shopper_polls_one_recharge_until_it_is_paid(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.GetRecharge.reply = recharge(status="PAID", bonus_fen=5_000, paid_at=Timestamp(
        seconds=1_795_000_300), payment={"never": "shown"})

    response = client.get("/api/v1/member/recharges/R4", headers=bearer())

    assert clients.member.GetRecharge.calls[0].message == pb.GetRechargeRequest(recharge_no="R4")
    assert (response.status_code, response.get_json()) == (200, {
        "id": 4, "recharge_no": "R4", "status": "PAID", "channel": "alipay", "amount_fen": 50_000,
        "bonus_fen": 5_000, "created_at": "2026-11-18T11:06:40Z", "pay_deadline": "2026-11-18T11:36:40Z",
        "paid_at": "2026-11-18T11:11:40Z"})


def test_another_shoppers_recharge_is_404(client: FlaskClient, clients, bearer: Callable, rpc_error) -> None:
    status, message, trailers = to_grpc(recharge_not_found())
    clients.member.GetRecharge.error = rpc_error(status, message, trailers)

    response = client.get("/api/v1/member/recharges/R4", headers=bearer())

    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "RECHARGE_NOT_FOUND")


def test_a_shopper_pages_through_their_recharges_by_status(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.ListMyRecharges.reply = pb.ListRechargesResponse(total=11, recharges=[recharge(status="PAID")])

    response = client.get("/api/v1/member/recharges?status=PAID&page=2&page_size=10", headers=bearer())
    unknown = client.get("/api/v1/member/recharges?status=REFUNDED", headers=bearer())

    assert [c.message for c in clients.member.ListMyRecharges.calls] == [
        pb.ListRechargesRequest(status="PAID", offset=10, limit=10)]
    body = response.get_json()
    assert (body["page"], body["total"], [(r["recharge_no"], r["status"]) for r in body["items"]]) == (
        2, 11, [("R4", "PAID")])
    assert "payment" not in body["items"][0]
    assert (unknown.status_code, unknown.get_json()["error"]["code"]) == (400, "INVALID_REQUEST")


def test_a_shopper_sees_and_filters_the_recharges_that_expired_unpaid(client: FlaskClient, clients,
                                                                     bearer: Callable) -> None:
    clients.member.ListMyRecharges.reply = pb.ListRechargesResponse(total=1, recharges=[recharge(status="EXPIRED")])
    clients.member.GetRecharge.reply = recharge(status="EXPIRED")

    listed = client.get("/api/v1/member/recharges?status=EXPIRED", headers=bearer())
    one = client.get("/api/v1/member/recharges/R4", headers=bearer())

    assert [c.message for c in clients.member.ListMyRecharges.calls] == [
        pb.ListRechargesRequest(status="EXPIRED", offset=0, limit=20)]
    assert (listed.status_code, [(r["recharge_no"], r["status"], r["amount_fen"], r["paid_at"])
                                 for r in listed.get_json()["items"]]) == (200, [("R4", "EXPIRED", 50_000, None)])
    assert (one.status_code, one.get_json()["status"]) == (200, "EXPIRED")


# coupon templates

def coupon_template(**changes: object) -> pb.CouponTemplate:
    fields: dict = {"id": 5, "name": "5 yuan off", "kind": "fixed", "amount_fen": 500, "total": 100, "issued": 7,
                    "per_user_limit": 2, "valid_from": JOINED, "valid_to": DEADLINE, "status": "active",
                    "created_at": JOINED, "created_by": 900}
    return pb.CouponTemplate(**{**fields, **changes})


def test_a_shopper_lists_the_coupons_they_may_claim(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.ListClaimableCouponTemplates.reply = pb.ListClaimableCouponTemplatesResponse(
        total=3, templates=[pb.ClaimableCouponTemplate(template=coupon_template(), claimed=1)])

    response = client.get("/api/v1/member/coupon-templates?page=3&page_size=1", headers=bearer())

    assert clients.member.ListClaimableCouponTemplates.calls[0].message == pb.ListClaimableCouponTemplatesRequest(
        offset=2, limit=1)
    assert response.get_json() == {"page": 3, "page_size": 1, "total": 3, "items": [{
        "id": 5, "name": "5 yuan off", "kind": "fixed", "amount_fen": 500, "percent_off": 0, "threshold_fen": 0,
        "cap_fen": 0, "total": 100, "issued": 7, "per_user_limit": 2, "valid_from": "2026-11-18T11:06:40Z",
        "valid_to": "2026-11-18T11:36:40Z", "category_ids": [], "claimed": 1}]}


def test_operators_list_coupon_templates_with_who_made_and_stopped_them(client: FlaskClient, clients,
                                                                        bearer: Callable) -> None:
    clients.member.ListCouponTemplates.reply = pb.ListCouponTemplatesResponse(total=1, templates=[coupon_template(
        status="disabled", disabled_at=DEADLINE, disabled_by=901, disable_reason="typo")])

    refused = [client.get("/api/v1/admin/coupon-templates", headers=bearer(roles)).status_code
               for roles in ("", "customer_service")]
    response = client.get("/api/v1/admin/coupon-templates?status=disabled", headers=bearer("operator"))

    assert (refused, clients.member.ListCouponTemplates.calls[0].message) == (
        [403, 403], pb.ListCouponTemplatesRequest(status="disabled", offset=0, limit=20))
    item = response.get_json()["items"][0]
    assert {name: item[name] for name in ("status", "created_at", "created_by", "disabled_at", "disabled_by",
                                          "disable_reason")} == {
        "status": "disabled", "created_at": "2026-11-18T11:06:40Z", "created_by": 900,
        "disabled_at": "2026-11-18T11:36:40Z", "disabled_by": 901, "disable_reason": "typo"}


def test_staff_list_coupon_templates_with_their_coupons_counted_by_how_they_stand(client: FlaskClient, clients,
                                                                                 bearer: Callable) -> None:
    clients.member.ListCouponTemplates.reply = pb.ListCouponTemplatesResponse(total=1, templates=[coupon_template(
        usage=pb.CouponUsage(available=3, locked=1, used=2, expired=1))])

    item = client.get("/api/v1/admin/coupon-templates", headers=bearer("finance")).get_json()["items"][0]

    assert {name: item[name] for name in ("issued", "available_count", "locked_count", "used_count",
                                          "expired_count")} == {
        "issued": 7, "available_count": 3, "locked_count": 1, "used_count": 2, "expired_count": 1}


def test_an_admin_finds_one_template_and_an_unknown_one_is_404(client: FlaskClient, clients, bearer: Callable,
                                                                rpc_error) -> None:
    clients.member.GetCouponTemplate.reply = coupon_template(created_by=0)
    found = client.get("/api/v1/admin/coupon-templates/5", headers=bearer("admin"))
    status, message, trailers = to_grpc(template_not_found())
    clients.member.GetCouponTemplate.error = rpc_error(status, message, trailers)
    unknown = client.get("/api/v1/admin/coupon-templates/6", headers=bearer("admin"))

    assert [c.message for c in clients.member.GetCouponTemplate.calls] == [
        pb.GetCouponTemplateRequest(template_id=5), pb.GetCouponTemplateRequest(template_id=6)]
    assert (found.get_json()["created_by"], found.get_json()["disabled_at"], found.get_json()["status"]) == (
        None, None, "active")
    assert (unknown.status_code, unknown.get_json()["error"]["code"]) == (404, "COUPON_TEMPLATE_NOT_FOUND")


def test_disabling_a_template_needs_a_reason_and_the_operator_role(client: FlaskClient, clients,
                                                                    bearer: Callable) -> None:
    clients.member.DisableCouponTemplate.reply = coupon_template(status="disabled", disabled_at=DEADLINE,
                                                                 disabled_by=900, disable_reason="typed 500 for 5")
    url = "/api/v1/admin/coupon-templates/5/disable"

    shopper = client.post(url, json={"reason": "x"}, headers=bearer())
    missing = client.post(url, json={}, headers=bearer("operator"))
    response = client.post(url, json={"reason": "typed 500 for 5"}, headers=bearer("operator"))

    assert (shopper.status_code, missing.status_code, response.status_code) == (403, 400, 200)
    assert [c.message for c in clients.member.DisableCouponTemplate.calls] == [
        pb.DisableCouponTemplateRequest(template_id=5, reason="typed 500 for 5")]
    assert (response.get_json()["status"], response.get_json()["disabled_by"]) == ("disabled", 900)


def test_finance_lists_the_templates_waiting_for_approval(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.ListCouponTemplates.reply = pb.ListCouponTemplatesResponse(total=1, templates=[coupon_template(
        status="pending_approval")])

    response = client.get("/api/v1/admin/coupon-templates?status=pending_approval", headers=bearer("finance"))

    assert clients.member.ListCouponTemplates.calls[0].message == pb.ListCouponTemplatesRequest(
        status="pending_approval", offset=0, limit=20)
    item = response.get_json()["items"][0]
    assert (response.status_code, item["status"], item["approved_by"], item["approved_at"]) == (
        200, "pending_approval", None, None)


def test_an_admin_or_finance_approves_a_template_and_operators_cannot(client: FlaskClient, clients,
                                                                      bearer: Callable) -> None:
    clients.member.ApproveCouponTemplate.reply = coupon_template(approved_at=DEADLINE, approved_by=902)
    url = "/api/v1/admin/coupon-templates/5/approve"

    refused = [client.post(url, headers=bearer(roles)).status_code for roles in ("", "operator", "customer_service")]
    approved = [client.post(url, headers=bearer(roles)) for roles in ("finance", "admin")]

    assert (refused, [r.status_code for r in approved]) == ([403, 403, 403], [200, 200])
    assert [c.message for c in clients.member.ApproveCouponTemplate.calls] == [
        pb.ApproveCouponTemplateRequest(template_id=5)] * 2
    body = approved[0].get_json()
    assert (body["status"], body["approved_by"], body["approved_at"]) == ("active", 902, "2026-11-18T11:36:40Z")


def test_approving_ones_own_template_is_403_own_request(client: FlaskClient, clients, bearer: Callable,
                                                        rpc_error) -> None:
    status, message, trailers = to_grpc(Forbidden(OWN_REQUEST, "another staff member must"))
    clients.member.ApproveCouponTemplate.error = rpc_error(status, message, trailers)

    response = client.post("/api/v1/admin/coupon-templates/5/approve", headers=bearer("admin"))

    assert (response.status_code, response.get_json()["error"]["code"]) == (403, "OWN_REQUEST")


def test_too_valuable_a_coupon_template_is_422(client: FlaskClient, clients, bearer: Callable, rpc_error) -> None:
    status, message, trailers = to_grpc(DomainError("COUPON_TEMPLATE_TOO_VALUABLE", "at most 100000 fen",
                                                    details={"amount_fen": "1-100000"}))
    clients.member.CreateCouponTemplate.error = rpc_error(status, message, trailers)

    response = client.post("/api/v1/admin/coupons", headers=bearer("operator"), json={
        "name": "typo", "kind": "fixed", "amount_fen": 100_000_000, "total": 1000,
        "valid_from": "2026-11-18T19:06:40+08:00", "valid_to": "2026-11-30T00:00:00Z"})

    assert (response.status_code, response.get_json()["error"]["code"]) == (422, "COUPON_TEMPLATE_TOO_VALUABLE")


def test_claiming_a_disabled_template_is_422(client: FlaskClient, clients, bearer: Callable, rpc_error) -> None:
    status, message, trailers = to_grpc(template_disabled())
    clients.member.ClaimCoupon.error = rpc_error(status, message, trailers)

    response = client.post("/api/v1/member/coupons/claim", json={"template_id": 5}, headers=bearer())

    assert (response.status_code, response.get_json()["error"]["code"]) == (422, "COUPON_TEMPLATE_DISABLED")


def test_a_claim_passes_its_idempotency_key_and_answers_201(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.ClaimCoupon.reply = pb.Coupon(id=8, template=coupon_template(), status="available",
                                                     claimed_at=JOINED)

    response = client.post("/api/v1/member/coupons/claim", json={"template_id": 5},
                           headers={**bearer(), "Idempotency-Key": "tap-1"})

    assert [c.message for c in clients.member.ClaimCoupon.calls] == [
        pb.ClaimCouponRequest(template_id=5, idempotency_key="tap-1")]
    assert (response.status_code, response.get_json()["id"]) == (201, 8)


def test_a_claim_without_an_idempotency_key_still_claims(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.ClaimCoupon.reply = pb.Coupon(id=8, template=coupon_template(), status="available",
                                                     claimed_at=JOINED)

    response = client.post("/api/v1/member/coupons/claim", json={"template_id": 5}, headers=bearer())

    assert [c.message for c in clients.member.ClaimCoupon.calls] == [pb.ClaimCouponRequest(template_id=5)]
    assert response.status_code == 201


def test_a_claim_with_a_malformed_idempotency_key_is_refused(client: FlaskClient, clients, bearer: Callable) -> None:
    response = client.post("/api/v1/member/coupons/claim", json={"template_id": 5},
                           headers={**bearer(), "Idempotency-Key": "x" * 129})

    assert (response.status_code, response.get_json()["error"]["code"], clients.member.ClaimCoupon.calls) == (
        400, "IDEMPOTENCY_KEY_INVALID", [])


def test_a_claim_key_reused_for_another_template_is_a_409(client: FlaskClient, clients, bearer: Callable,
                                                         rpc_error) -> None:
    status, message, trailers = to_grpc(key_reused())
    clients.member.ClaimCoupon.error = rpc_error(status, message, trailers)

    response = client.post("/api/v1/member/coupons/claim", json={"template_id": 6},
                           headers={**bearer(), "Idempotency-Key": "tap-1"})

    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert clients.member.ClaimCoupon.calls[0].message.idempotency_key == "tap-1"


def test_the_openapi_document_declares_the_claims_idempotency_key_optional(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()

    claim = spec["paths"]["/api/v1/member/coupons/claim"]["post"]
    withdrawal = spec["paths"]["/api/v1/member/withdrawals"]["post"]
    assert [(p["name"], p["in"], p["required"]) for p in claim["parameters"]] == [("Idempotency-Key", "header", False)]
    assert [(p["name"], p["required"]) for p in withdrawal["parameters"]] == [("Idempotency-Key", True)]
    assert "409 IDEMPOTENCY_KEY_REUSED" in claim["description"]


def test_recharge_and_withdrawal_amounts_document_the_member_services_limits(client: FlaskClient) -> None:
    # Documented 1..10^12 while the member service refuses a recharge outside 100..5,000,000 fen and a
    # withdrawal under 100 fen or over 500,000 fen a day.
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]

    assert [(schemas[name]["properties"]["amount_fen"]["minimum"], schemas[name]["properties"]["amount_fen"]["maximum"])
            for name in ("RechargeRequest", "WithdrawalRequest")] == [(100, 5_000_000), (100, 500_000)]


def test_an_amount_outside_the_documented_limits_is_judged_by_the_member_service_alone(
        client: FlaskClient, clients, bearer: Callable) -> None:
    headers = {**bearer(), "Idempotency-Key": "tap-1"}
    client.post("/api/v1/member/recharges", json={"amount_fen": 99, "channel": "alipay"}, headers=headers)
    client.post("/api/v1/member/withdrawals", json={"amount_fen": 500_001}, headers=headers)

    assert ([call.message.amount_fen for call in clients.member.CreateRecharge.calls],
            [call.message.amount_fen for call in clients.member.RequestWithdrawal.calls]) == ([99], [500_001])


def test_a_shopper_closes_a_recharge_and_sees_it_closed(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.CloseRecharge.reply = recharge(status="CLOSED", payment={"never": "shown"})

    response = client.post("/api/v1/member/recharges/R4/close", headers=bearer())

    assert clients.member.CloseRecharge.calls[0].message == pb.CloseRechargeRequest(recharge_no="R4")
    assert (response.status_code, response.get_json()) == (200, {
        "id": 4, "recharge_no": "R4", "status": "CLOSED", "channel": "alipay", "amount_fen": 50_000,
        "bonus_fen": 0, "created_at": "2026-11-18T11:06:40Z", "pay_deadline": "2026-11-18T11:36:40Z",
        "paid_at": None})


def test_closing_a_recharge_the_payer_paid_first_answers_it_paid(client: FlaskClient, clients,
                                                                 bearer: Callable) -> None:
    clients.member.CloseRecharge.reply = recharge(status="PAID", bonus_fen=5_000,
                                                  paid_at=Timestamp(seconds=1_795_000_300))

    response = client.post("/api/v1/member/recharges/R4/close", headers=bearer())

    assert (response.status_code, response.get_json()["status"], response.get_json()["bonus_fen"]) == (
        200, "PAID", 5_000)


def test_a_shopper_filters_their_closed_recharges(client: FlaskClient, clients, bearer: Callable) -> None:
    clients.member.ListMyRecharges.reply = pb.ListRechargesResponse(total=1, recharges=[recharge(status="CLOSED")])

    listed = client.get("/api/v1/member/recharges?status=CLOSED", headers=bearer())

    assert [c.message for c in clients.member.ListMyRecharges.calls] == [
        pb.ListRechargesRequest(status="CLOSED", offset=0, limit=20)]
    assert (listed.status_code, [r["status"] for r in listed.get_json()["items"]]) == (200, ["CLOSED"])


@pytest.mark.parametrize(("error", "expected"), [
    (recharge_not_found(), (404, "RECHARGE_NOT_FOUND", None)),
    (Conflict("RECHARGE_STATE_CONFLICT", "the payer is paying this recharge right now", details={"status": "PENDING"}),
     (409, "RECHARGE_STATE_CONFLICT", {"status": "PENDING"})),
    (Conflict("RECHARGE_STATE_CONFLICT", "an EXPIRED recharge cannot be closed", details={"status": "EXPIRED"}),
     (409, "RECHARGE_STATE_CONFLICT", {"status": "EXPIRED"})),
    (DomainError("RECHARGE_NOT_CLOSABLE", "no close at the channel", details={"channel": "bank_card"}),
     (422, "RECHARGE_NOT_CLOSABLE", {"channel": "bank_card"})),
    (DomainError("WECHATPAY_UNAVAILABLE", "the payment channel did not answer", kind=ErrorKind.UNAVAILABLE),
     (503, "WECHATPAY_UNAVAILABLE", None)),
])
def test_a_refused_close_answers_the_member_services_code(client: FlaskClient, clients, bearer: Callable, rpc_error,
                                                          error: DomainError, expected: tuple[object, ...]) -> None:
    clients.member.CloseRecharge.error = rpc_error(*to_grpc(error))

    response = client.post("/api/v1/member/recharges/R4/close", headers=bearer())

    body = response.get_json()["error"]
    assert (response.status_code, body["code"], body.get("details")) == expected
