"""The member service on PostgreSQL through its real gRPC server: races on balances and coupons, ownership, roles."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf.timestamp_pb2 import Timestamp
from mall.events.v1.member_events_pb2 import MemberPlanSubscribed
from mall.events.v1.order_events_pb2 import OrderPaid
from mall.member.v1 import member_pb2 as pb
from mall.member.v1 import member_pb2_grpc
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from services.common.alipay import Alipay, AlipaySettings, rsa2_sign, signing_content
from services.common.config import ServiceSettings
from services.common.errors import Conflict
from services.common.events import decode, unpack
from services.common.grpc_server import create_server, from_grpc, registration
from services.common.outbox import outbox
from services.member import service
from services.member.channels import AlipayRecharge, RechargeChannels
from services.member.db import SqlMemberUnitOfWork, coupons, member_lookups, recharges, withdrawals
from services.member.domain import PLATFORM, Account, transfer
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import FakeCategories, FakePhones, SimulatedPayout
from tests.fixtures.keys import JwtKeys, as_service
from tests.fixtures.member_orders import award_points_for_order, reverse_points_for_refund
from tests.integration.member.order_events import deliver
from tests.unit.common.test_wechatpay import pem_private, pem_public

pytestmark = pytest.mark.integration

ALICE, BOB, FINANCE = 101, 102, 900
APP_ID = "2021000000000001"


@pytest.fixture(scope="module")
def alipay_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """(the application's key, Alipay's key)."""
    return (rsa.generate_private_key(public_exponent=65537, key_size=2048),
            rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture
def stub(uow: Callable[[], SqlMemberUnitOfWork], jwt_keys: JwtKeys,
         alipay_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]) -> Iterator[member_pb2_grpc.MemberServiceStub]:
    app_key, alipay_key = alipay_keys
    channels = RechargeChannels({"alipay": AlipayRecharge(Alipay(AlipaySettings(
        app_id=APP_ID, app_private_key_pem=pem_private(app_key), alipay_public_key_pem=pem_public(alipay_key))),
        "https://mall.example/api/v1/payments/alipay/notify")})
    servicer = __import__("services.member.grpc_api", fromlist=["MemberServicer"]).MemberServicer(
        uow, SimulatedPayout(), channels, categories=FakeCategories(), phones=FakePhones())
    settings = ServiceSettings.from_env("member", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                   "MEMBER_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(pb, member_pb2_grpc, "MemberService", servicer)])
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield member_pb2_grpc.MemberServiceStub(channel)
    server.stop(grace=None)


@pytest.fixture
def as_user(jwt_keys: JwtKeys) -> Callable[..., list[tuple[str, str]]]:
    """as_user(user_id, roles="") → call metadata carrying a genuine access token."""
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=300, refresh_ttl_seconds=600)

    def metadata(user_id: int, roles: str = "") -> list[tuple[str, str]]:
        user = User(phone="13800000000", created_at=datetime.now(UTC), roles=roles, id=user_id)
        return [("authorization", f"Bearer {issuer.access_token(user, user.role_set, datetime.now(UTC))}")]
    return metadata


def fund(uow: Callable[[], SqlMemberUnitOfWork], user_id: int, amount_fen: int) -> None:
    with uow() as work:
        work.ledger.post(transfer(f"seed:{user_id}", "recharge", "seed", amount=amount_fen,
                                  source=(PLATFORM, Account.CLEARING), target=(user_id, Account.AVAILABLE)),
                         datetime.now(UTC))
        work.commit()


def wallet(uow: Callable[[], SqlMemberUnitOfWork], user_id: int) -> tuple[int, int]:
    with uow() as work:
        return work.ledger.balance(user_id, Account.AVAILABLE), work.ledger.balance(user_id, Account.PENDING)


def code_of(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as exc:
        return from_grpc(exc)[:2]
    return grpc.StatusCode.OK, ""


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


def test_fifty_concurrent_withdrawals_of_6000_from_10000_accept_exactly_one(
        stub, uow, as_user, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    fund(uow, ALICE, 10_000)
    metadata = as_user(ALICE)

    def withdraw(n: int) -> tuple[grpc.StatusCode, str]:
        return code_of(lambda: stub.RequestWithdrawal(
            pb.RequestWithdrawalRequest(amount_fen=6_000, idempotency_key=f"key-{n}"), metadata=metadata, timeout=30))

    with ThreadPoolExecutor(50) as pool:
        outcomes = list(pool.map(withdraw, range(50)))

    assert outcomes.count((grpc.StatusCode.OK, "")) == 1
    assert outcomes.count((grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_BALANCE")) == 49
    assert wallet(uow, ALICE) == (4_000, 6_000)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(withdrawals)).scalar_one() == 1


def test_a_withdrawal_past_the_daily_limit_is_refused_with_the_exact_amount_left(stub, uow, as_user) -> None:  # type: ignore[no-untyped-def]
    fund(uow, ALICE, 600_000)
    metadata = as_user(ALICE)
    for amount, key in ((120_000, "first"), (190_000, "second")):
        stub.RequestWithdrawal(pb.RequestWithdrawalRequest(amount_fen=amount, idempotency_key=key),
                               metadata=metadata, timeout=30)

    with pytest.raises(grpc.RpcError) as raised:  # PostgreSQL sums bigints as numeric: the details were a Decimal
        stub.RequestWithdrawal(pb.RequestWithdrawalRequest(amount_fen=190_001, idempotency_key="third"),
                               metadata=metadata, timeout=30)

    assert from_grpc(raised.value) == (grpc.StatusCode.FAILED_PRECONDITION, "WITHDRAWAL_DAILY_LIMIT",
                                       "at most 500000 fen a day (from midnight in Shanghai) may be withdrawn",
                                       {"remaining_fen": 190_000})
    assert wallet(uow, ALICE) == (290_000, 310_000)


def test_the_same_idempotency_key_twenty_times_makes_one_withdrawal(stub, uow, as_user, engine) -> None:  # type: ignore[no-untyped-def]
    fund(uow, ALICE, 10_000)
    metadata = as_user(ALICE)

    def withdraw(_: int) -> int:
        return stub.RequestWithdrawal(pb.RequestWithdrawalRequest(amount_fen=1_500, idempotency_key="same-key"),
                                      metadata=metadata, timeout=30).id

    with ThreadPoolExecutor(20) as pool:
        ids = set(pool.map(withdraw, range(20)))

    assert len(ids) == 1
    assert wallet(uow, ALICE) == (8_500, 1_500)


def test_only_finance_decides_a_withdrawal_and_approval_pays_it_out(stub, uow, as_user) -> None:  # type: ignore[no-untyped-def]
    fund(uow, ALICE, 10_000)
    withdrawal = stub.RequestWithdrawal(pb.RequestWithdrawalRequest(amount_fen=6_000, idempotency_key="k"),
                                        metadata=as_user(ALICE), timeout=10)
    decide = pb.DecideWithdrawalRequest(withdrawal_id=withdrawal.id, approve=True, note="ok")

    denied = [code_of(lambda md=md: stub.DecideWithdrawal(decide, metadata=md, timeout=10))
              for md in (as_user(ALICE), as_user(7, "admin"), as_user(8, "operator,customer_service"))]
    paid = stub.DecideWithdrawal(decide, metadata=as_user(FINANCE, "finance"), timeout=10)

    assert denied == [(grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")] * 3
    assert (paid.status, paid.payout_txn_id != "", wallet(uow, ALICE)) == ("PAID", True, (4_000, 0))


def test_the_shopper_is_answered_what_finance_wrote_for_them_and_staff_the_note_too(stub, uow, as_user) -> None:  # type: ignore[no-untyped-def]
    fund(uow, ALICE, 10_000)
    withdrawal = stub.RequestWithdrawal(pb.RequestWithdrawalRequest(amount_fen=6_000, idempotency_key="k"),
                                        metadata=as_user(ALICE), timeout=10)

    staff = stub.DecideWithdrawal(pb.DecideWithdrawalRequest(
        withdrawal_id=withdrawal.id, approve=False, note="internal: linked to account 42",
        shopper_reason="please verify your real name first"), metadata=as_user(FINANCE, "finance"), timeout=10)
    mine = stub.GetMyWithdrawal(pb.GetMyWithdrawalRequest(withdrawal_id=withdrawal.id), metadata=as_user(ALICE),
                                timeout=10)
    listed = stub.ListMyWithdrawals(pb.ListWithdrawalsRequest(limit=10), metadata=as_user(ALICE),
                                    timeout=10).withdrawals[0]

    assert [(w.status, w.note, w.shopper_reason) for w in (staff, mine, listed)] == [
        ("REJECTED", "internal: linked to account 42", "please verify your real name first"),
        ("REJECTED", "", "please verify your real name first"), ("REJECTED", "", "please verify your real name first")]


def test_two_hundred_users_claiming_the_last_ten_coupons_get_exactly_ten(stub, uow, as_user, engine) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    template = stub.CreateCouponTemplate(pb.CreateCouponTemplateRequest(
        name="last ten", kind="fixed", amount_fen=500, threshold_fen=1_000, total=10, per_user_limit=1,
        valid_from=stamp(now - timedelta(hours=1)), valid_to=stamp(now + timedelta(days=1))),
        metadata=as_user(7, "admin"), timeout=10)
    tokens = [as_user(1_000 + n) for n in range(200)]

    def claim(n: int) -> tuple[grpc.StatusCode, str]:
        return code_of(lambda: stub.ClaimCoupon(pb.ClaimCouponRequest(template_id=template.id), metadata=tokens[n],
                                                timeout=30))

    with ThreadPoolExecutor(50) as pool:
        outcomes = list(pool.map(claim, range(200)))

    assert outcomes.count((grpc.StatusCode.OK, "")) == 10
    assert outcomes.count((grpc.StatusCode.FAILED_PRECONDITION, "COUPON_SOLD_OUT")) == 190
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(coupons)).scalar_one() == 10


def test_one_user_claiming_concurrently_stays_within_the_per_user_limit(stub, as_user, engine) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    template = stub.CreateCouponTemplate(pb.CreateCouponTemplateRequest(
        name="two each", kind="percent", percent_off=10, cap_fen=5_000, total=100, per_user_limit=2,
        valid_from=stamp(now - timedelta(hours=1)), valid_to=stamp(now + timedelta(days=1))),
        metadata=as_user(7, "admin"), timeout=10)
    metadata = as_user(ALICE)

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(lambda _: code_of(lambda: stub.ClaimCoupon(
            pb.ClaimCouponRequest(template_id=template.id), metadata=metadata, timeout=30)), range(20)))

    assert outcomes.count((grpc.StatusCode.OK, "")) == 2
    assert outcomes.count((grpc.StatusCode.FAILED_PRECONDITION, "COUPON_LIMIT_REACHED")) == 18
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(coupons)
                            .where(coupons.c.template_id == template.id, coupons.c.user_id == ALICE)).scalar_one() == 2


def test_a_user_never_sees_or_uses_another_users_coupon(stub, as_user) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    template = stub.CreateCouponTemplate(pb.CreateCouponTemplateRequest(
        name="mine", kind="fixed", amount_fen=300, total=5, per_user_limit=1,
        valid_from=stamp(now - timedelta(hours=1)), valid_to=stamp(now + timedelta(days=1))),
        metadata=as_user(7, "admin"), timeout=10)
    alices = stub.ClaimCoupon(pb.ClaimCouponRequest(template_id=template.id), metadata=as_user(ALICE), timeout=10)
    lines = [pb.OrderLine(category_id=1, amount_fen=5_000)]

    bobs_list = stub.ListCoupons(pb.ListCouponsRequest(), metadata=as_user(BOB), timeout=10)
    lock = code_of(lambda: stub.LockCoupon(pb.LockCouponRequest(order_no="B-1", coupon_id=alices.id, lines=lines),
                                           metadata=as_user(BOB), timeout=10))
    quote = code_of(lambda: stub.QuoteCoupons(pb.QuoteCouponsRequest(lines=lines, coupon_id=alices.id),
                                              metadata=as_user(BOB), timeout=10))

    assert (bobs_list.total, lock, quote) == (0, (grpc.StatusCode.NOT_FOUND, "COUPON_NOT_FOUND"),
                                              (grpc.StatusCode.NOT_FOUND, "COUPON_NOT_FOUND"))


def test_lock_use_and_release_of_a_coupon_are_idempotent_by_order(stub, as_user, engine, uow) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    template = stub.CreateCouponTemplate(pb.CreateCouponTemplateRequest(
        name="15% off", kind="percent", percent_off=15, cap_fen=2_000, total=5, per_user_limit=1,
        valid_from=stamp(now - timedelta(hours=1)), valid_to=stamp(now + timedelta(days=1))),
        metadata=as_user(7, "admin"), timeout=10)
    coupon = stub.ClaimCoupon(pb.ClaimCouponRequest(template_id=template.id), metadata=as_user(ALICE), timeout=10)
    lock = pb.LockCouponRequest(order_no="O-1", coupon_id=coupon.id, lines=[pb.OrderLine(category_id=3,
                                                                                         amount_fen=9_999)])
    md = as_user(ALICE)

    discounts = [stub.LockCoupon(lock, metadata=md, timeout=10).discount_fen for _ in range(2)]
    for event_id in ("e-1", "e-2"):  # order-paid uses the order's coupon; the same payment published again
        deliver(uow, OrderPaid(order_no="O-1", user_id=ALICE, paid_fen=8_500, paid_at=stamp(now)), event_id)

    def stored() -> tuple[object, ...]:
        """The coupon's row, the orders' expired locks and the ledger's entries."""
        with engine.connect() as conn:
            return (conn.execute(select(coupons).where(coupons.c.id == coupon.id)).one(),
                    conn.execute(text("SELECT * FROM expired_coupon_locks ORDER BY order_no")).all(),
                    conn.execute(text("SELECT * FROM ledger_entries ORDER BY id")).all())

    stub.ReleaseCoupon(pb.ReleaseCouponRequest(order_no="O-1"), metadata=md, timeout=10)
    released_once = stored()
    stub.ReleaseCoupon(pb.ReleaseCouponRequest(order_no="O-1"), metadata=md, timeout=10)
    listed = stub.ListCoupons(pb.ListCouponsRequest(), metadata=md, timeout=10)

    assert (discounts, [c.status for c in listed.coupons]) == ([1_499, 1_499], ["used"])
    coupon_row, expired_locks, ledger = released_once
    assert (coupon_row.status, coupon_row.order_no, coupon_row.discount_fen, expired_locks, ledger) == (
        "used", "O-1", 1_499, [], [])
    assert stored() == released_once


def test_a_parent_category_coupon_is_quoted_and_locked_on_the_lines_whose_path_passes_through_it(  # type: ignore[no-untyped-def]
        stub, as_user) -> None:
    now = datetime.now(UTC)
    template = stub.CreateCouponTemplate(pb.CreateCouponTemplateRequest(
        name="数码满50减10", kind="fixed", amount_fen=1_000, threshold_fen=5_000, total=5, per_user_limit=1,
        category_ids=[1], valid_from=stamp(now - timedelta(hours=1)), valid_to=stamp(now + timedelta(days=1))),
        metadata=as_user(7, "admin"), timeout=10)
    coupon = stub.ClaimCoupon(pb.ClaimCouponRequest(template_id=template.id), metadata=as_user(ALICE), timeout=10)
    phone, sofa = pb.OrderLine(category_id=2, amount_fen=4_000, category_path=[1, 2]), pb.OrderLine(
        category_id=3, amount_fen=9_000, category_path=[3])
    foldable = pb.OrderLine(category_id=9, amount_fen=1_000, category_path=[1, 2, 9])
    md = as_user(ALICE)

    short = stub.QuoteCoupons(pb.QuoteCouponsRequest(lines=[phone, sofa]), metadata=md, timeout=10).quotes
    quoted = stub.QuoteCoupons(pb.QuoteCouponsRequest(lines=[phone, sofa, foldable]), metadata=md, timeout=10).quotes
    locked = stub.LockCoupon(pb.LockCouponRequest(order_no="O-1", coupon_id=coupon.id, lines=[phone, sofa, foldable]),
                             metadata=md, timeout=10)

    # 数码's lines: 4,000 of 13,000 short of 5,000; with the foldable 5,000
    assert [(q.usable, q.reason, q.discount_fen) for q in [*short, *quoted]] == [
        (False, "COUPON_THRESHOLD_NOT_MET", 0), (True, "", 1_000)]
    assert (locked.discount_fen, list(locked.category_ids)) == (1_000, [1])


def test_balance_payment_and_refund_are_exact_and_idempotent(stub, uow, as_user, jwt_keys) -> None:  # type: ignore[no-untyped-def]
    fund(uow, ALICE, 10_000)
    pay = pb.PayWithBalanceRequest(order_no="O-9", amount_fen=3_333)

    with ThreadPoolExecutor(10) as pool:
        balances = set(pool.map(lambda _: stub.PayWithBalance(pay, metadata=as_user(ALICE), timeout=30).balance_fen,
                                range(10)))
    refund = pb.RefundToBalanceRequest(refund_no="RF-1", order_no="O-9", user_id=ALICE, amount_fen=1_111)
    refused = [code_of(lambda md=md: stub.RefundToBalance(refund, metadata=md, timeout=10))  # type: ignore[misc]
               for md in (as_user(ALICE), as_user(FINANCE, "finance"), as_user(7, "admin"))]
    for _ in range(3):
        stub.RefundToBalance(refund, metadata=as_service(jwt_keys, "order"), timeout=10)

    assert balances == {6_667}
    assert refused == [(grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")] * 3  # only the order service refunds
    assert wallet(uow, ALICE) == (7_778, 0)


def test_points_are_awarded_once_locked_and_released_by_order(stub, uow, as_user) -> None:  # type: ignore[no-untyped-def]
    stub.SignUp(pb.SignUpRequest(channel="self"), metadata=as_user(ALICE), timeout=10)
    for _ in range(2):
        award_points_for_order(uow(), order_no="O-1", user_id=ALICE, paid_fen=50_099)
    md = as_user(ALICE)

    locked = stub.LockPoints(pb.LockPointsRequest(order_no="O-2", points=200, payable_fen=1_000), metadata=md,
                             timeout=10)
    during = stub.GetMember(pb.GetMemberRequest(), metadata=md, timeout=10).member.points
    released = [stub.ReleasePoints(pb.ReleasePointsRequest(order_no="O-2"), metadata=md, timeout=10).points
                for _ in range(2)]
    member = stub.GetMember(pb.GetMemberRequest(), metadata=md, timeout=10).member
    entries = stub.ListPointsEntries(pb.ListEntriesRequest(limit=10), metadata=md, timeout=10)

    assert (locked.discount_fen, during, released, member.points, member.total_spend_fen) == (
        200, 300, [200, 0], 500, 50_099)
    assert [(e.account, e.kind, e.amount, e.balance_after, e.reference) for e in entries.entries] == [
        ("points", "points_released", 200, 500, "O-2"), ("points", "points_locked", -200, 300, "O-2"),
        ("points", "order_paid", 500, 500, "O-1")]


def test_owed_points_taken_from_a_later_order_are_shown_as_points_owed_taken(stub, uow, as_user) -> None:  # type: ignore[no-untyped-def]
    stub.SignUp(pb.SignUpRequest(channel="self"), metadata=as_user(ALICE), timeout=10)
    award_points_for_order(uow(), order_no="O-1", user_id=ALICE, paid_fen=10_000)  # 100 points
    md = as_user(ALICE)
    stub.LockPoints(pb.LockPointsRequest(order_no="O-2", points=100, payable_fen=20_000), metadata=md, timeout=10)
    reverse_points_for_refund(uow(), order_no="O-1", refund_no="RF-1", amount_fen=10_000)  # all 100 held: owed
    award_points_for_order(uow(), order_no="O-3", user_id=ALICE, paid_fen=30_000)  # 300 points, the 100 owed taken

    entries = stub.ListPointsEntries(pb.ListEntriesRequest(limit=10), metadata=md, timeout=10)
    staff = stub.LookUpMember(pb.LookUpMemberRequest(user_id=ALICE), metadata=as_user(FINANCE, "finance"), timeout=10)

    assert [(e.account, e.kind, e.amount, e.balance_after, e.reference) for e in entries.entries] == [
        ("points", "points_owed_taken", -100, 200, "O-3"), ("points", "order_paid", 300, 300, "O-3"),
        ("points", "points_locked", -100, 0, "O-2"), ("points", "order_paid", 100, 100, "O-1")]
    assert [(e.account, e.kind, e.amount) for e in staff.points_entries][:2] == [
        ("points", "points_owed_taken", -100), ("points", "order_paid", 300)]


def test_points_for_a_negative_payable_are_invalid_argument_and_for_nothing_to_pay_over_the_limit(  # type: ignore[no-untyped-def]
        stub, uow, as_user) -> None:
    stub.SignUp(pb.SignUpRequest(channel="self"), metadata=as_user(ALICE), timeout=10)
    award_points_for_order(uow(), order_no="O-1", user_id=ALICE, paid_fen=50_000)
    md = as_user(ALICE)

    negative = code_of(lambda: stub.LockPoints(pb.LockPointsRequest(order_no="O-2", points=200, payable_fen=-1_000),
                                               metadata=md, timeout=10))
    nothing = code_of(lambda: stub.LockPoints(pb.LockPointsRequest(order_no="O-2", points=200, payable_fen=0),
                                              metadata=md, timeout=10))

    assert (negative, nothing) == ((grpc.StatusCode.INVALID_ARGUMENT, "POINTS_INVALID"),
                                   (grpc.StatusCode.FAILED_PRECONDITION, "POINTS_OVER_LIMIT"))
    assert stub.GetMember(pb.GetMemberRequest(), metadata=md, timeout=10).member.points == 500


def test_get_member_answers_the_points_owed_of_every_kind_in_one_total(stub, uow, as_user) -> None:  # type: ignore[no-untyped-def]
    stub.SignUp(pb.SignUpRequest(channel="self"), metadata=as_user(ALICE), timeout=10)
    with uow() as tx:
        tx.points.add_owed(ALICE, "order_refunded", 70)
        tx.points.add_owed(ALICE, "points_used", 30)
        tx.commit()

    member = stub.GetMember(pb.GetMemberRequest(), metadata=as_user(ALICE), timeout=10).member

    assert (member.points, member.points_owed) == (0, 100)


def test_customer_service_read_a_members_record_as_the_member_sees_it_and_each_read_is_recorded(  # type: ignore[no-untyped-def]
        stub, uow, as_user, engine) -> None:
    stub.SignUp(pb.SignUpRequest(channel="self"), metadata=as_user(ALICE), timeout=10)
    fund(uow, ALICE, 10_000)
    with uow() as tx:
        tx.points.add_owed(ALICE, "order_refunded", 70)
        tx.commit()
    clerk = as_user(FINANCE, "customer_service")

    record = stub.LookUpMember(pb.LookUpMemberRequest(user_id=ALICE), metadata=clerk, timeout=10)
    missing = code_of(lambda: stub.LookUpMember(pb.LookUpMemberRequest(user_id=BOB), metadata=clerk, timeout=10))

    own = stub.GetMember(pb.GetMemberRequest(), metadata=as_user(ALICE), timeout=10).member
    assert (record.member, record.member.points_owed, record.member.balance_fen) == (own, 70, 10_000)
    assert (list(record.points_entries), record.points_entries_total) == ([], 0)
    assert missing == (grpc.StatusCode.NOT_FOUND, "MEMBER_NOT_FOUND")
    with engine.connect() as conn:
        assert conn.execute(select(member_lookups.c.actor_id, member_lookups.c.user_id, member_lookups.c.found)
                            .order_by(member_lookups.c.id)).all() == [(FINANCE, ALICE, True), (FINANCE, BOB, False)]


def test_a_members_record_of_user_0_is_invalid_argument_and_no_read_is_recorded(  # type: ignore[no-untyped-def]
        stub, as_user, engine) -> None:
    refused = code_of(lambda: stub.LookUpMember(pb.LookUpMemberRequest(user_id=0),
                                                metadata=as_user(FINANCE, "customer_service"), timeout=10))

    assert refused == (grpc.StatusCode.INVALID_ARGUMENT, "USER_ID_INVALID")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(member_lookups)).scalar_one() == 0


@pytest.mark.parametrize("roles", ["", "operator"], ids=["shopper", "operator"])
def test_shoppers_and_operators_may_not_read_a_members_record(stub, as_user, engine, roles: str) -> None:  # type: ignore[no-untyped-def]
    stub.SignUp(pb.SignUpRequest(channel="self"), metadata=as_user(ALICE), timeout=10)

    refused = code_of(lambda: stub.LookUpMember(pb.LookUpMemberRequest(user_id=ALICE), metadata=as_user(BOB, roles),
                                                timeout=10))

    assert refused == (grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(member_lookups)).scalar_one() == 0


def test_the_ledger_audit_finds_every_account_consistent_and_is_finance_only(stub, uow, as_user) -> None:  # type: ignore[no-untyped-def]
    fund(uow, ALICE, 10_000)
    stub.RequestWithdrawal(pb.RequestWithdrawalRequest(amount_fen=2_000, idempotency_key="k"),
                           metadata=as_user(ALICE), timeout=10)

    audit = stub.CheckLedgers(pb.CheckLedgersRequest(), metadata=as_user(FINANCE, "finance"), timeout=10)
    shopper = code_of(lambda: stub.CheckLedgers(pb.CheckLedgersRequest(), metadata=as_user(ALICE), timeout=10))

    # the platform's clearing account and Alice's wallet: bonus (empty), available, pending
    assert (audit.accounts_checked, list(audit.mismatches), audit.next_after_account_id, shopper) == (
        4, [], 0, (grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN"))


def test_the_ledger_audit_checks_a_range_of_accounts_at_a_time_to_the_end(stub, uow, as_user, engine) -> None:  # type: ignore[no-untyped-def]
    fund(uow, ALICE, 10_000)
    with engine.begin() as conn:
        conn.execute(text("UPDATE ledger_accounts SET balance = balance + 1 WHERE user_id = :u AND account = "
                          "'available'"), {"u": ALICE})
        ids = conn.execute(text("SELECT id FROM ledger_accounts ORDER BY id")).scalars().all()
    ranges, after = [], 0
    while True:
        audit = stub.CheckLedgers(pb.CheckLedgersRequest(after_account_id=after, limit=2),
                                  metadata=as_user(FINANCE, "finance"), timeout=10)
        ranges.append((audit.accounts_checked, [m.account for m in audit.mismatches], audit.next_after_account_id))
        if not audit.next_after_account_id:
            break
        after = audit.next_after_account_id
    too_many = code_of(lambda: stub.CheckLedgers(pb.CheckLedgersRequest(limit=10_001),
                                                 metadata=as_user(FINANCE, "finance"), timeout=10))

    assert len(ids) == 4  # the platform's clearing account and Alice's wallet: bonus, available, pending
    assert [checked for checked, _, _ in ranges] == [2, 2, 0]
    assert [mismatched for _, mismatched, _ in ranges if mismatched] == [["available"]]
    assert ranges[0][2] == ids[1] and ranges[-1][2] == 0
    assert too_many == (grpc.StatusCode.INVALID_ARGUMENT, "PAGE_INVALID")


def test_the_audit_reports_a_balance_that_differs_from_its_entries(stub, uow, as_user, engine) -> None:  # type: ignore[no-untyped-def]
    fund(uow, ALICE, 10_000)
    with engine.begin() as conn:
        conn.execute(text("UPDATE ledger_accounts SET balance = balance + 1 WHERE user_id = :u AND account = "
                          "'available'"), {"u": ALICE})

    audit = stub.CheckLedgers(pb.CheckLedgersRequest(), metadata=as_user(FINANCE, "admin"), timeout=10)

    assert [(m.user_id, m.account, m.balance, m.entries_sum) for m in audit.mismatches] == [
        (ALICE, "available", 10_001, 10_000)]


def test_the_database_refuses_a_negative_user_balance_and_changes_to_ledger_entries(uow, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    fund(uow, ALICE, 100)

    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE ledger_accounts SET balance = -1 WHERE user_id = :u"), {"u": ALICE})
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE ledger_entries SET amount = amount + 1"))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_postings"))
    assert wallet(uow, ALICE) == (100, 0)


def test_racing_locks_of_one_order_hold_its_points_and_one_coupon_once(stub, uow, as_user) -> None:  # type: ignore[no-untyped-def]
    stub.SignUp(pb.SignUpRequest(channel="self"), metadata=as_user(ALICE), timeout=10)
    award_points_for_order(uow(), order_no="O-1", user_id=ALICE, paid_fen=120_000)  # 1,200 points (at normal; silver after)
    now = datetime.now(UTC)
    template = stub.CreateCouponTemplate(pb.CreateCouponTemplateRequest(
        name="two", kind="fixed", amount_fen=100, total=5, per_user_limit=2,
        valid_from=stamp(now - timedelta(hours=1)), valid_to=stamp(now + timedelta(days=1))),
        metadata=as_user(7, "admin"), timeout=10)
    md = as_user(ALICE)
    coupon_ids = [stub.ClaimCoupon(pb.ClaimCouponRequest(template_id=template.id), metadata=md, timeout=10).id
                  for _ in range(2)]
    lines = [pb.OrderLine(category_id=1, amount_fen=1_000)]

    with ThreadPoolExecutor(10) as pool:
        points = list(pool.map(lambda _: code_of(lambda: stub.LockPoints(
            pb.LockPointsRequest(order_no="O-2", points=300, payable_fen=1_000), metadata=md, timeout=30)), range(10)))
        coupons = list(pool.map(lambda n: code_of(lambda: stub.LockCoupon(pb.LockCouponRequest(
            order_no="O-2", coupon_id=coupon_ids[n % 2], lines=lines), metadata=md, timeout=30)), range(10)))
    member = stub.GetMember(pb.GetMemberRequest(), metadata=md, timeout=10).member

    assert (points, member.points) == ([(grpc.StatusCode.OK, "")] * 10, 900)
    assert set(coupons) == {(grpc.StatusCode.OK, ""), (grpc.StatusCode.ABORTED, "ORDER_HAS_COUPON")}
    assert member.coupons_available == 1


def test_a_plan_bought_ten_times_at_once_with_one_key_is_charged_once(stub, uow, engine, as_user) -> None:  # type: ignore[no-untyped-def]
    md = as_user(ALICE)
    stub.SignUp(pb.SignUpRequest(channel="self"), metadata=md, timeout=10)
    fund(uow, ALICE, 20_000)
    plans = stub.ListPlans(pb.ListPlansRequest(), metadata=md, timeout=10).plans
    annual = next(p for p in plans if p.days == 366)

    with ThreadPoolExecutor(10) as pool:
        members = list(pool.map(lambda _: stub.SubscribePlan(pb.SubscribePlanRequest(
            plan_id=annual.id, idempotency_key="plan-1"), metadata=md, timeout=30).member, range(10)))
    member = stub.GetMember(pb.GetMemberRequest(), metadata=md, timeout=10).member

    assert {m.plan.expires_at.seconds for m in members} == {member.plan.expires_at.seconds}
    assert (member.balance_fen, member.plan.name, member.discount_bp) == (20_000 - annual.price_fen, annual.name, 9_500)
    with engine.connect() as conn:  # and published once, in the purchase's transaction
        published = conn.execute(select(outbox.c.aggregate_id, outbox.c.envelope).where(
            outbox.c.event_type == "member-plan-subscribed")).all()
    bought = [(key, unpack(decode(bytes(raw)), MemberPlanSubscribed)) for key, raw in published]
    assert [(key, e.plan_id, e.amount_fen, e.balance_fen, e.posting_key) for key, e in bought] == [
        (str(ALICE), annual.id, annual.price_fen, 20_000 - annual.price_fen, f"plan:{ALICE}:plan-1")]


def test_get_discount_is_100_for_a_non_member_and_the_members_level_times_plan_discount(stub, uow, as_user) -> None:  # type: ignore[no-untyped-def]
    md = as_user(ALICE)

    def discount() -> tuple[int, int]:
        answer = stub.GetDiscount(pb.GetDiscountRequest(), metadata=md, timeout=10)
        return answer.discount_bp, answer.discount_percent

    before = discount()
    stub.SignUp(pb.SignUpRequest(channel="self"), metadata=md, timeout=10)
    joined = discount()
    fund(uow, ALICE, 20_000)
    annual = next(p for p in stub.ListPlans(pb.ListPlansRequest(), metadata=md, timeout=10).plans if p.days == 366)
    stub.SubscribePlan(pb.SubscribePlanRequest(plan_id=annual.id, idempotency_key="plan-1"), metadata=md, timeout=30)
    planned = discount()

    assert (before, joined, planned) == ((10_000, 100), (10_000, 100), (9_500, 95))
    member = stub.GetMember(pb.GetMemberRequest(), metadata=md, timeout=10).member
    assert (member.discount_bp, member.discount_percent) == planned


def test_a_gold_members_plus_rate_is_exact_in_basis_points_and_floored_only_in_the_deprecated_percent(  # type: ignore[no-untyped-def]
        stub, uow, as_user) -> None:
    md = as_user(ALICE)
    stub.SignUp(pb.SignUpRequest(channel="self"), metadata=md, timeout=10)
    award_points_for_order(uow(), order_no="O-gold", user_id=ALICE, paid_fen=500_000)  # gold: 95%
    fund(uow, ALICE, 20_000)
    stub.SubscribePlan(pb.SubscribePlanRequest(plan_id=1, idempotency_key="plan-1"), metadata=md, timeout=30)

    answer = stub.GetDiscount(pb.GetDiscountRequest(), metadata=md, timeout=10)
    member = stub.GetMember(pb.GetMemberRequest(), metadata=md, timeout=10).member

    assert (answer.discount_bp, answer.discount_percent) == (9_025, 90)  # 95% x 95%; 90 for callers not upgraded
    assert (member.level, member.discount_bp, member.discount_percent) == ("gold", 9_025, 90)


def test_fifty_concurrent_credits_of_one_recharge_credit_it_once(stub, uow, as_user, engine) -> None:  # type: ignore[no-untyped-def]
    recharge = stub.CreateRecharge(pb.CreateRechargeRequest(amount_fen=5_000, channel="alipay",
                                                            idempotency_key="r1"), metadata=as_user(ALICE), timeout=10)

    with ThreadPoolExecutor(50) as pool:
        list(pool.map(lambda _: service.credit_recharge(uow(), recharge_no=recharge.recharge_no, paid_fen=5_000,
                                                        channel_txn_id="ALI-1"), range(50)))
    credited = (wallet(uow, ALICE), recharged_events(engine))
    with pytest.raises(Conflict) as exc:  # another transaction claiming the same recharge
        service.credit_recharge(uow(), recharge_no=recharge.recharge_no, paid_fen=5_000, channel_txn_id="ALI-2")

    assert exc.value.code == "RECHARGE_ALREADY_PAID"
    assert (recharge.payment["out_trade_no"], credited) == (recharge.recharge_no, ((5_000, 0), 1))
    assert (wallet(uow, ALICE), recharged_events(engine)) == credited


def alipay_notify(key: rsa.RSAPrivateKey, out_trade_no: str, total_amount: str, **changes: str) -> bytes:
    params = {"notify_type": "trade_status_sync", "app_id": APP_ID, "charset": "utf-8", "version": "1.0",
              "sign_type": "RSA2", "trade_no": "2026120622001", "out_trade_no": out_trade_no,
              "trade_status": "TRADE_SUCCESS", "total_amount": total_amount, **changes}
    params["sign"] = rsa2_sign(key, signing_content(params, exclude=("sign", "sign_type")))
    return urlencode(params).encode()


def recharged_events(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbox).where(
            outbox.c.event_type == "member-recharged")).scalar_one()


def test_an_alipay_notify_sent_fifty_times_at_once_credits_once_and_forged_ones_nothing(  # type: ignore[no-untyped-def]
        stub, uow, engine, as_user, alipay_keys) -> None:
    app_key, alipay_key = alipay_keys
    recharge = stub.CreateRecharge(pb.CreateRechargeRequest(amount_fen=50_005, channel="alipay",
                                                            idempotency_key="r1"), metadata=as_user(ALICE), timeout=10)
    forged = [alipay_notify(app_key, recharge.recharge_no, "500.05"),           # signed with the app's own key
              alipay_notify(alipay_key, recharge.recharge_no, "500.04"),        # not the recharge's amount
              alipay_notify(alipay_key, recharge.recharge_no, "500.05", app_id="2021000000000999"),
              alipay_notify(alipay_key, recharge.recharge_no, "500.05").replace(b"500.05", b"5000.05")]
    genuine = alipay_notify(alipay_key, recharge.recharge_no, "500.05")

    refused = [code_of(lambda body=body: stub.HandleRechargeNotify(pb.RechargeNotifyRequest(
        channel="alipay", body=body), timeout=10)) for body in forged]
    after_forged = (wallet(uow, ALICE), recharged_events(engine))
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: stub.HandleRechargeNotify(pb.RechargeNotifyRequest(
            channel="alipay", body=genuine), timeout=30).recharge_no, range(50)))

    assert "order_string" in recharge.payment
    assert (refused, after_forged) == ([(grpc.StatusCode.INVALID_ARGUMENT, "NOTIFY_REJECTED")] * 4, ((0, 0), 0))
    assert answers == [recharge.recharge_no] * 50
    assert (wallet(uow, ALICE), recharged_events(engine)) == ((50_005, 0), 1)


def test_a_member_invited_with_a_code_records_the_inviter(stub, uow, as_user) -> None:  # type: ignore[no-untyped-def]
    alice = stub.SignUp(pb.SignUpRequest(channel="self"), metadata=as_user(ALICE), timeout=10).member
    unknown = code_of(lambda: stub.SignUp(pb.SignUpRequest(channel="invitation", invite_code="ZZZZ2345"),
                                          metadata=as_user(BOB), timeout=10))
    bob = stub.SignUp(pb.SignUpRequest(channel="invitation", invite_code=alice.invite_code.lower()),
                      metadata=as_user(BOB), timeout=10).member

    with uow() as work:
        invited_by = work.members.get(BOB).invited_by  # type: ignore[union-attr]
    assert (len(alice.invite_code), unknown, bob.channel, invited_by) == (
        8, (grpc.StatusCode.FAILED_PRECONDITION, "INVITE_CODE_UNKNOWN"), "invitation", ALICE)
    assert bob.invite_code not in ("", alice.invite_code)


def test_ten_recharge_requests_at_once_with_one_key_start_one_recharge(stub, as_user, engine) -> None:  # type: ignore[no-untyped-def]
    md = as_user(ALICE)
    request = pb.CreateRechargeRequest(amount_fen=5_000, channel="alipay", idempotency_key="double-tap")

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: stub.CreateRecharge(request, metadata=md, timeout=30), range(10)))
    reused = code_of(lambda: stub.CreateRecharge(pb.CreateRechargeRequest(
        amount_fen=6_000, channel="alipay", idempotency_key="double-tap"), metadata=md, timeout=10))
    missing = code_of(lambda: stub.CreateRecharge(pb.CreateRechargeRequest(amount_fen=5_000, channel="alipay"),
                                                  metadata=md, timeout=10))

    assert {(a.recharge_no, a.payment["order_string"]) for a in answers} == {
        (answers[0].recharge_no, answers[0].payment["order_string"])}
    assert (reused, missing) == ((grpc.StatusCode.ABORTED, "IDEMPOTENCY_KEY_REUSED"),
                                 (grpc.StatusCode.INVALID_ARGUMENT, "IDEMPOTENCY_KEY_INVALID"))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(recharges)).scalar_one() == 1


def test_a_shopper_reads_only_their_own_recharges_newest_first(stub, uow, as_user) -> None:  # type: ignore[no-untyped-def]
    started = [stub.CreateRecharge(pb.CreateRechargeRequest(amount_fen=amount, channel="alipay",
                                                            idempotency_key=f"r-{amount}"),
                                   metadata=as_user(ALICE), timeout=10) for amount in (50_000, 6_000)]
    stub.CreateRecharge(pb.CreateRechargeRequest(amount_fen=7_000, channel="alipay", idempotency_key="r-bob"),
                        metadata=as_user(BOB), timeout=10)
    service.credit_recharge(uow(), recharge_no=started[0].recharge_no, paid_fen=50_000, channel_txn_id="ALI-1")

    paid = stub.GetRecharge(pb.GetRechargeRequest(recharge_no=started[0].recharge_no), metadata=as_user(ALICE),
                            timeout=10)
    bobs_view = code_of(lambda: stub.GetRecharge(pb.GetRechargeRequest(recharge_no=started[0].recharge_no),
                                                 metadata=as_user(BOB), timeout=10))
    mine = stub.ListMyRecharges(pb.ListRechargesRequest(), metadata=as_user(ALICE), timeout=10)
    pending = stub.ListMyRecharges(pb.ListRechargesRequest(status="PENDING"), metadata=as_user(ALICE), timeout=10)

    assert (paid.status, paid.amount_fen, paid.bonus_fen, paid.HasField("paid_at"), dict(paid.payment)) == (
        "PAID", 50_000, 5_000, True, {})
    assert paid.pay_deadline.seconds - paid.created_at.seconds == 30 * 60
    assert bobs_view == (grpc.StatusCode.NOT_FOUND, "RECHARGE_NOT_FOUND")
    assert ([r.recharge_no for r in mine.recharges], mine.total) == ([s.recharge_no for s in reversed(started)], 2)
    assert ([(r.recharge_no, r.status) for r in pending.recharges], pending.total) == (
        [(started[1].recharge_no, "PENDING")], 1)


def test_staff_list_and_disable_templates_and_shoppers_list_what_they_may_claim(stub, as_user) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)

    def create(name: str, **changes: object) -> int:
        fields: dict = {"name": name, "kind": "fixed", "amount_fen": 500, "total": 10, "per_user_limit": 1,
                        "valid_from": stamp(now - timedelta(hours=1)), "valid_to": stamp(now + timedelta(days=1))}
        return stub.CreateCouponTemplate(pb.CreateCouponTemplateRequest(**{**fields, **changes}),
                                         metadata=as_user(7, "admin"), timeout=10).id  # active at once

    open_one, twice, claimed, typo = (create("open"), create("twice", per_user_limit=2), create("claimed"),
                                      create("typo"))
    create("later", valid_from=stamp(now + timedelta(hours=1)))
    for template_id in (twice, claimed):
        stub.ClaimCoupon(pb.ClaimCouponRequest(template_id=template_id), metadata=as_user(ALICE), timeout=10)
    disable = pb.DisableCouponTemplateRequest(template_id=typo, reason="500 yuan, not 5")
    shopper_disable = code_of(lambda: stub.DisableCouponTemplate(disable, metadata=as_user(ALICE), timeout=10))
    disabled = stub.DisableCouponTemplate(disable, metadata=as_user(8, "admin"), timeout=10)
    refused = code_of(lambda: stub.ClaimCoupon(pb.ClaimCouponRequest(template_id=typo), metadata=as_user(BOB),
                                               timeout=10))

    claimable = stub.ListClaimableCouponTemplates(pb.ListClaimableCouponTemplatesRequest(), metadata=as_user(ALICE),
                                                  timeout=10)
    listed = stub.ListCouponTemplates(pb.ListCouponTemplatesRequest(status="disabled", limit=5),
                                      metadata=as_user(7, "operator"), timeout=10)
    shopper_list = code_of(lambda: stub.ListCouponTemplates(pb.ListCouponTemplatesRequest(), metadata=as_user(ALICE),
                                                            timeout=10))

    assert (shopper_disable, shopper_list, refused) == ((grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN"),
                                                        (grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN"),
                                                        (grpc.StatusCode.FAILED_PRECONDITION,
                                                         "COUPON_TEMPLATE_DISABLED"))
    assert (disabled.status, disabled.created_by, disabled.disabled_by, disabled.disable_reason) == (
        "disabled", 7, 8, "500 yuan, not 5")
    assert ([(t.template.id, t.claimed) for t in claimable.templates], claimable.total) == (
        [(twice, 1), (open_one, 0)], 2)
    assert (claimable.templates[0].template.created_by, claimable.templates[0].template.disable_reason) == (0, "")
    assert ([t.id for t in listed.templates], listed.total) == ([typo], 1)


def test_an_operators_template_waits_for_another_staff_members_approval_and_neither_claims_it(  # type: ignore[no-untyped-def]
        stub, as_user) -> None:
    now = datetime.now(UTC)
    operator, finance = as_user(7, "operator"), as_user(FINANCE, "finance")

    def create(amount_fen: int) -> pb.CouponTemplate:
        return stub.CreateCouponTemplate(pb.CreateCouponTemplateRequest(
            name="operator's", kind="fixed", amount_fen=amount_fen, total=1_000, per_user_limit=1,
            valid_from=stamp(now - timedelta(hours=1)), valid_to=stamp(now + timedelta(days=1))),
            metadata=operator, timeout=10)

    def claim(metadata: list[tuple[str, str]]) -> tuple[grpc.StatusCode, str]:
        return code_of(lambda: stub.ClaimCoupon(pb.ClaimCouponRequest(template_id=template.id), metadata=metadata,
                                                timeout=10))

    def approve(metadata: list[tuple[str, str]]) -> tuple[grpc.StatusCode, str]:
        return code_of(lambda: stub.ApproveCouponTemplate(pb.ApproveCouponTemplateRequest(template_id=template.id),
                                                          metadata=metadata, timeout=10))

    too_valuable = code_of(lambda: create(100_000_000))
    template = create(500)
    waiting = [claim(as_user(ALICE)), claim(operator)]
    refused_approvals = [approve(operator), approve(as_user(9, "customer_service"))]
    approved = stub.ApproveCouponTemplate(pb.ApproveCouponTemplateRequest(template_id=template.id), metadata=finance,
                                          timeout=10)
    offered = [[t.template.id for t in stub.ListClaimableCouponTemplates(
        pb.ListClaimableCouponTemplatesRequest(limit=10), metadata=who, timeout=10).templates]
        for who in (operator, finance, as_user(ALICE))]
    claims = [claim(operator), claim(finance), claim(as_user(ALICE))]

    assert too_valuable == (grpc.StatusCode.FAILED_PRECONDITION, "COUPON_TEMPLATE_TOO_VALUABLE")
    assert (template.status, template.created_by, template.approved_by) == ("pending_approval", 7, 0)
    assert waiting == [(grpc.StatusCode.FAILED_PRECONDITION, "COUPON_TEMPLATE_NOT_APPROVED"),
                       (grpc.StatusCode.PERMISSION_DENIED, "OWN_REQUEST")]
    assert refused_approvals == [(grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")] * 2
    assert (approved.status, approved.approved_by, approved.HasField("approved_at")) == ("active", FINANCE, True)
    assert (offered, claims) == ([[], [], [template.id]],
                                 [(grpc.StatusCode.PERMISSION_DENIED, "OWN_REQUEST")] * 2 + [(grpc.StatusCode.OK, "")])
