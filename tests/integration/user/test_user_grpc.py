"""The user service's RPCs through a real gRPC server: the caller comes from the token, BOLA is a NOT_FOUND."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from mall.user.v1 import user_pb2, user_pb2_grpc
from sqlalchemy import Engine, create_engine, select

from services.common.auth import Caller, caller_var
from services.common.clients import ServiceClients
from services.common.config import Env, ServiceSettings
from services.common.discovery import Discovery
from services.common.errors import DomainError
from services.common.grpc_server import create_server, from_grpc, registration
from services.member.neighbours import GrpcPayers
from services.member.phones import GrpcBuyerPhones
from services.order.neighbours import GrpcUsers
from services.user.db import (
    SqlUserUnitOfWork,
    start_mappers,
    user_lookups,
    user_password_sets,
    user_role_changes,
    users,
)
from services.user.domain import User, WechatAccount
from services.user.grpc_api import UserServicer
from services.user.identity import FormatOnlyIdentityChecker, IdentityKeys, IdentityVault
from services.user.sms import ConsoleSms
from services.user.tokens import TokenIssuer
from tests.fakes import FakePasswords, FakeWechat
from tests.fixtures.keys import JwtKeys, as_service, service_token

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
ADDRESS = user_pb2.AddressFields(receiver_name="张三", receiver_phone="13800138000", province="广东省",
                                 city="深圳市", district="南山区", detail="科技园 1 号")


@pytest.fixture
def accounts(pg_uow: Callable[[], SqlUserUnitOfWork]) -> dict[str, User]:
    made = {}
    for name, phone, roles in (("alice", "13900000001", ""), ("bob", "13900000002", ""),
                               ("admin", "13900000003", "admin"), ("operator", "13900000004", "operator"),
                               ("finance", "13900000005", "finance")):
        with pg_uow() as tx:
            user = User(phone=phone, created_at=datetime.now(UTC), roles=roles)
            tx.users.add(user)
            tx.commit()
            made[name] = user
    return made


@pytest.fixture
def wechat() -> FakeWechat:
    return FakeWechat()


@pytest.fixture
def user_target(pg_engine: Engine, jwt_keys: JwtKeys, issuer: TokenIssuer, wechat: FakeWechat) -> Iterator[str]:
    """The user service behind a real gRPC server: its address."""
    start_mappers()
    vault = IdentityVault(IdentityKeys.derived_for_dev(b"test"))
    servicer = UserServicer(functools.partial(SqlUserUnitOfWork, pg_engine, "user"), ConsoleSms(), issuer,
                            FakePasswords(), FormatOnlyIdentityChecker(), vault, wechat=wechat)
    settings = ServiceSettings.from_env("user", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                 "USER_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(user_pb2, user_pb2_grpc, "UserService", servicer)])
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


@pytest.fixture
def stub(user_target: str) -> Iterator[user_pb2_grpc.UserServiceStub]:
    with grpc.insecure_channel(user_target) as channel:
        yield user_pb2_grpc.UserServiceStub(channel)


@pytest.fixture
def as_user(issuer: TokenIssuer, accounts: dict[str, User]) -> Callable[[str], list[tuple[str, str]]]:
    """as_user("alice"): call metadata carrying that account's access token (with its roles)."""
    def metadata(name: str) -> list[tuple[str, str]]:
        user = accounts[name]
        return [("authorization", f"Bearer {issuer.access_token(user, user.role_set, datetime.now(UTC))}")]
    return metadata


def failure(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    status, code, _message, _details = from_grpc(raised.value)  # type: ignore[arg-type]
    return status, code


def test_another_shoppers_address_is_not_found_and_stays(stub, as_user, accounts) -> None:
    added = stub.AddAddress(user_pb2.AddAddressRequest(fields=ADDRESS), metadata=as_user("alice"))

    assert failure(lambda: stub.DeleteAddress(user_pb2.DeleteAddressRequest(address_id=added.id),
                                              metadata=as_user("bob"))) == (grpc.StatusCode.NOT_FOUND,
                                                                            "ADDRESS_NOT_FOUND")
    assert len(stub.ListAddresses(user_pb2.ListAddressesRequest(), metadata=as_user("alice")).addresses) == 1


@pytest.mark.parametrize("staff", ["finance", "operator", "admin"])
def test_staff_are_refused_a_shoppers_buyer_and_verification(stub, as_user, accounts, staff: str) -> None:
    added = stub.AddAddress(user_pb2.AddAddressRequest(fields=ADDRESS), metadata=as_user("alice"))
    stub.VerifyIdentity(user_pb2.VerifyIdentityRequest(real_name="张三", id_number="11010519491231002X"),
                        metadata=as_user("alice"))
    alice = accounts["alice"].id

    refusals = [failure(lambda: stub.GetBuyer(user_pb2.GetBuyerRequest(user_id=alice, address_id=added.id),
                                              metadata=as_user(staff))),
                failure(lambda: stub.GetVerification(user_pb2.GetVerificationRequest(user_id=alice),
                                                     metadata=as_user(staff)))]

    assert refusals == [(grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")] * 2


def test_a_staff_member_reads_their_own_buyer_as_its_owner(stub, as_user, accounts) -> None:
    added = stub.AddAddress(user_pb2.AddAddressRequest(fields=ADDRESS), metadata=as_user("finance"))
    stub.VerifyIdentity(user_pb2.VerifyIdentityRequest(real_name="张三", id_number="11010519491231002X"),
                        metadata=as_user("finance"))

    found = stub.GetBuyer(user_pb2.GetBuyerRequest(user_id=accounts["finance"].id, address_id=added.id),
                          metadata=as_user("finance"))

    assert (found.verified, found.address.id) == (True, added.id)


def test_a_service_calling_as_itself_is_refused_a_shoppers_buyer(stub, as_user, accounts, jwt_keys: JwtKeys) -> None:
    added = stub.AddAddress(user_pb2.AddAddressRequest(fields=ADDRESS), metadata=as_user("alice"))

    assert failure(lambda: stub.GetBuyer(user_pb2.GetBuyerRequest(user_id=accounts["alice"].id,
                                                                  address_id=added.id),
                                         metadata=as_service(jwt_keys, "order"))) == (
        grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")


def test_the_order_service_reads_its_callers_buyer_and_not_for_a_staff_caller(
        stub, as_user, accounts, user_target: str, issuer: TokenIssuer, jwt_keys: JwtKeys) -> None:
    added = stub.AddAddress(user_pb2.AddAddressRequest(fields=ADDRESS), metadata=as_user("alice"))
    stub.VerifyIdentity(user_pb2.VerifyIdentityRequest(real_name="张三", id_number="11010519491231002X"),
                        metadata=as_user("alice"))
    users_of_order = GrpcUsers(ServiceClients(Discovery(None, Env({"USER_GRPC_TARGET": user_target})), 5,
                                              service_token=service_token(jwt_keys, "order")))

    def as_caller(name: str) -> Callable[[], object]:
        def call() -> object:
            user = accounts[name]
            token = caller_var.set(Caller(user_id=user.id or 0, roles=user.role_set, token_id="t",
                                          token=issuer.access_token(user, user.role_set, datetime.now(UTC))))
            try:
                return users_of_order.buyer_address(accounts["alice"].id or 0, added.id)
            finally:
                caller_var.reset(token)
        return call

    address = as_caller("alice")()
    with pytest.raises(DomainError) as refused:
        as_caller("finance")()

    assert (getattr(address, "phone", None), refused.value.code) == ("13800138000", "FORBIDDEN")


def test_get_verification_of_another_shopper_is_not_found(stub, as_user, accounts) -> None:
    stub.VerifyIdentity(user_pb2.VerifyIdentityRequest(real_name="张三", id_number="11010519491231002X"),
                        metadata=as_user("alice"))

    mine = stub.GetVerification(user_pb2.GetVerificationRequest(user_id=accounts["alice"].id),
                                metadata=as_user("alice"))

    assert (mine.verified, mine.real_name_masked, mine.id_number_masked) == (True, "张*", "1101**********002X")
    assert failure(lambda: stub.GetVerification(user_pb2.GetVerificationRequest(user_id=accounts["alice"].id),
                                                metadata=as_user("bob"))) == (grpc.StatusCode.NOT_FOUND,
                                                                              "USER_NOT_FOUND")


def test_get_buyer_answers_unverified_before_looking_at_the_address_then_the_address_in_full(
        stub, as_user, accounts) -> None:
    added = stub.AddAddress(user_pb2.AddAddressRequest(fields=ADDRESS), metadata=as_user("alice"))
    alice = accounts["alice"].id

    unverified = stub.GetBuyer(user_pb2.GetBuyerRequest(user_id=alice, address_id=added.id + 999),
                               metadata=as_user("alice"))
    stub.VerifyIdentity(user_pb2.VerifyIdentityRequest(real_name="张三", id_number="11010519491231002X"),
                        metadata=as_user("alice"))
    buyer = stub.GetBuyer(user_pb2.GetBuyerRequest(user_id=alice, address_id=added.id), metadata=as_user("alice"))

    assert (unverified.verified, unverified.HasField("address")) == (False, False)
    assert (buyer.verified, buyer.address.id, buyer.address.receiver_phone) == (True, added.id, "13800138000")
    assert failure(lambda: stub.GetBuyer(user_pb2.GetBuyerRequest(user_id=alice, address_id=added.id + 999),
                                         metadata=as_user("alice"))) == (grpc.StatusCode.NOT_FOUND,
                                                                         "ADDRESS_NOT_FOUND")
    assert failure(lambda: stub.GetBuyer(user_pb2.GetBuyerRequest(user_id=alice, address_id=added.id),
                                         metadata=as_user("bob"))) == (grpc.StatusCode.NOT_FOUND,
                                                                       "ADDRESS_NOT_FOUND")


def test_calls_for_the_caller_need_a_token(stub) -> None:
    assert failure(lambda: stub.GetProfile(user_pb2.GetProfileRequest())) == (
        grpc.StatusCode.UNAUTHENTICATED, "AUTH_REQUIRED")


def test_profile_update_changes_only_the_fields_present(stub, as_user) -> None:
    stub.UpdateProfile(user_pb2.UpdateProfileRequest(nickname="小明", birthday="1990-05-17"), metadata=as_user("alice"))

    profile = stub.UpdateProfile(user_pb2.UpdateProfileRequest(region="上海"), metadata=as_user("alice"))

    assert (profile.nickname, profile.birthday, profile.region, profile.phone_masked) == (
        "小明", "1990-05-17", "上海市", "139****0001")


def test_a_birthday_that_is_not_a_date_is_invalid_argument(stub, as_user) -> None:
    assert failure(lambda: stub.UpdateProfile(user_pb2.UpdateProfileRequest(birthday="1990-02-30"),
                                              metadata=as_user("alice"))) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                                              "PROFILE_INVALID")


def test_only_an_admin_sets_roles(stub, as_user, accounts) -> None:
    request = user_pb2.SetUserRolesRequest(user_id=accounts["bob"].id, roles=["finance"])

    assert failure(lambda: stub.SetUserRoles(request, metadata=as_user("operator"))) == (
        grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")
    done = stub.SetUserRoles(request, metadata=as_user("admin"))
    assert (list(done.user.roles), done.password_cleared) == (["finance"], True)  # bob was a shopper


def test_only_an_admin_sets_a_staff_password_and_it_is_audited(stub, as_user, accounts, pg_engine: Engine) -> None:
    request = user_pb2.SetStaffPasswordRequest(user_id=accounts["operator"].id, new_password="staffpass1")

    assert failure(lambda: stub.SetStaffPassword(request, metadata=as_user("operator"))) == (
        grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")
    stub.SetStaffPassword(request, metadata=as_user("admin"))

    with pg_engine.connect() as conn:
        assert conn.execute(select(user_password_sets.c.user_id, user_password_sets.c.actor_id)).all() == [
            (accounts["operator"].id, accounts["admin"].id)]
        assert conn.execute(select(users.c.password_hash).where(users.c.id == accounts["operator"].id)).scalar_one() \
            == "plain:staffpass1"


def test_a_password_an_admin_set_logs_in_only_to_be_changed_with_a_reset_code(stub, as_user, accounts) -> None:
    stub.SetStaffPassword(user_pb2.SetStaffPasswordRequest(user_id=accounts["operator"].id, new_password="staffpass1"),
                          metadata=as_user("admin"))
    login = user_pb2.LoginWithPasswordRequest(phone="13900000004", password="staffpass1")

    refused = failure(lambda: stub.LoginWithPassword(login))
    code = stub.SendSmsCode(user_pb2.SendSmsCodeRequest(phone="13900000004", purpose="reset")).dev_code
    changed = stub.LoginWithPassword(user_pb2.LoginWithPasswordRequest(
        phone="13900000004", password="staffpass1", new_password="mypass2026", sms_code=code))

    assert refused == (grpc.StatusCode.PERMISSION_DENIED, "PASSWORD_CHANGE_REQUIRED")
    assert list(changed.user.roles) == ["operator"]
    assert failure(lambda: stub.LoginWithPassword(login)) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")


def test_create_staff_command_creates_a_password_account_with_the_role(tmp_path: Path, jwt_keys: JwtKeys) -> None:
    url = f"sqlite:///{tmp_path}/user.db"
    env = {**os.environ, "USER_DATABASE_URL": url, "JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
           "ADMIN_PASSWORD": "staffpass1", "MINIMALL_ENV": "test"}
    command = [sys.executable, "-m", "services.user"]
    subprocess.run([*command, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)

    made = subprocess.run([*command, "create-staff", "--phone", "13900000009", "--role", "finance"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    refused = subprocess.run([*command, "create-staff", "--phone", "13900000009", "--role", "root"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=120)

    assert (made.returncode, made.stdout.strip()) == (0, "finance 139****0009 (id 1) is ready")
    assert (refused.returncode, refused.stderr.strip()) == (
        2, "create-staff needs --role, one of admin, customer_service, finance, operator")
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(select(users.c.roles)).all() == [("finance",)]
        assert conn.execute(select(user_role_changes.c.actor_id, user_role_changes.c.after)).all() == [(None, "finance")]
    engine.dispose()


def test_the_wechat_payer_is_the_bound_openid_for_the_user_and_finance_and_not_found_for_others(
        stub: user_pb2_grpc.UserServiceStub, accounts: dict[str, User], as_user: Callable[[str], list[tuple[str, str]]],
        pg_uow: Callable[[], SqlUserUnitOfWork]) -> None:
    alice, bob = accounts["alice"].id or 0, accounts["bob"].id or 0
    with pg_uow() as tx:
        tx.wechat_accounts.add(WechatAccount(user_id=alice, appid="wx-app", openid="o-alice-pay", unionid=None,
                                             bound_at=datetime.now(UTC)))
        tx.commit()
    request = user_pb2.GetWechatPayerRequest(user_id=alice)
    assert stub.GetWechatPayer(request, metadata=as_user("alice")) == user_pb2.WechatPayer(appid="wx-app",
                                                                                           openid="o-alice-pay")
    assert stub.GetWechatPayer(request, metadata=as_user("finance")).openid == "o-alice-pay"
    assert stub.GetWechatPayer(user_pb2.GetWechatPayerRequest(user_id=bob), metadata=as_user("bob")).openid == ""
    with pytest.raises(grpc.RpcError) as refused:
        stub.GetWechatPayer(request, metadata=as_user("bob"))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("roles", ["admin", "operator", "customer_service"])
def test_staff_other_than_finance_may_not_read_a_wechat_payer(stub: user_pb2_grpc.UserServiceStub,
                                                              accounts: dict[str, User], issuer: TokenIssuer,
                                                              roles: str) -> None:
    """Finance's approval of a withdrawal is the one staff act the payer is read for (services/member/neighbours.py)."""
    staff = User(phone="13900000099", created_at=datetime.now(UTC), roles=roles, id=990)
    token = issuer.access_token(staff, staff.role_set, datetime.now(UTC))

    assert failure(lambda: stub.GetWechatPayer(user_pb2.GetWechatPayerRequest(user_id=accounts["alice"].id or 0),
                                               metadata=[("authorization", f"Bearer {token}")])) == (
        grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")


def test_the_member_service_reads_a_wechat_payer_as_itself_so_its_payout_job_can_send_a_transfer_again(
        user_target: str, accounts: dict[str, User], pg_uow: Callable[[], SqlUserUnitOfWork], jwt_keys: JwtKeys,
        issuer: TokenIssuer) -> None:
    """The payout job re-sends a transfer WeChat Pay never received (services/member/channels.py `_send_again`):
    it has no shopper or staff token to pass on, so the member service asks for the payee as itself, as build_app
    wires its clients; another service may not."""
    alice = accounts["alice"].id or 0
    with pg_uow() as tx:
        tx.wechat_accounts.add(WechatAccount(user_id=alice, appid="wx-app", openid="o-alice-pay", unionid=None,
                                             bound_at=datetime.now(UTC)))
        tx.commit()

    def payers(service: str) -> GrpcPayers:
        return GrpcPayers(ServiceClients(Discovery(None, Env({"USER_GRPC_TARGET": user_target})), 5,
                                         service_token=service_token(jwt_keys, service)))

    assert caller_var.get() is None  # as in a job: no caller
    assert payers("member").payer_openid(alice) == "o-alice-pay"
    with pytest.raises(DomainError) as refused:
        payers("product").payer_openid(alice)
    assert refused.value.code == "FORBIDDEN"
    bob = accounts["bob"]  # a request's caller is passed on as before: bob may not read alice's payer
    token = caller_var.set(Caller(user_id=bob.id or 0, roles=frozenset(), token_id="t",
                                  token=issuer.access_token(bob, bob.role_set, datetime.now(UTC))))
    try:
        with pytest.raises(DomainError) as not_his:
            payers("member").payer_openid(alice)
    finally:
        caller_var.reset(token)
    assert not_his.value.code == "USER_NOT_FOUND"
    finance = accounts["finance"]  # finance approving a withdrawal: their token is passed on, and reads it
    token = caller_var.set(Caller(user_id=finance.id or 0, roles=finance.role_set, token_id="t",
                                  token=issuer.access_token(finance, finance.role_set, datetime.now(UTC))))
    try:
        assert payers("member").payer_openid(alice) == "o-alice-pay"
    finally:
        caller_var.reset(token)


def test_only_the_member_service_as_itself_reads_a_payees_real_name(
        stub, as_user, accounts: dict[str, User], user_target: str, jwt_keys: JwtKeys) -> None:
    """A WeChat Pay transfer of 2,000 yuan or more names its payee: the member service asks for the verified name as
    itself, whoever its caller is; no user's token (the owner's, an admin's) nor another service gets it."""
    alice = accounts["alice"].id or 0
    stub.VerifyIdentity(user_pb2.VerifyIdentityRequest(real_name="张三", id_number="11010519491231002X"),
                        metadata=as_user("alice"))

    def payers(service: str) -> GrpcPayers:
        return GrpcPayers(ServiceClients(Discovery(None, Env({"USER_GRPC_TARGET": user_target})), 5,
                                         service_token=service_token(jwt_keys, service)))

    assert payers("member").payee_name(alice) == "张三"
    assert payers("member").payee_name(accounts["bob"].id or 0) == ""  # not verified
    request = user_pb2.GetPayeeNameRequest(user_id=alice)
    assert [failure(lambda who=who: stub.GetPayeeName(request, metadata=as_user(who)))
            for who in ("alice", "admin")] == [(grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")] * 2
    with pytest.raises(DomainError) as refused:
        payers("product").payee_name(alice)
    assert refused.value.code == "FORBIDDEN"


def test_only_the_member_service_as_itself_learns_whether_a_user_has_bound_a_phone(
        stub, as_user, accounts: dict[str, User], user_target: str, jwt_keys: JwtKeys,
        pg_uow: Callable[[], SqlUserUnitOfWork]) -> None:
    """A purchase joins its buyer only with a phone bound (M1): the member service's order-paid consumer, which has no
    caller, asks as itself (GrpcBuyerPhones, as its consume role wires it). No shopper's token (the owner's own) nor
    another service's gets the answer; the answer is a yes or no, never the number."""
    with pg_uow() as tx:
        wechat_only = User(phone=None, created_at=datetime.now(UTC))
        tx.users.add(wechat_only)
        tx.commit()
    alice = accounts["alice"].id or 0

    def phones(service: str) -> GrpcBuyerPhones:
        return GrpcBuyerPhones(ServiceClients(Discovery(None, Env({"USER_GRPC_TARGET": user_target})), 5,
                                              service_token=service_token(jwt_keys, service)))

    assert caller_var.get() is None  # as in the consumer: no caller
    assert [phones("member").has_phone(user_id) for user_id in (alice, wechat_only.id or 0, 10**9)] == [
        True, False, False]  # a phone; WeChat-only; no such user
    assert [f.name for f in user_pb2.HasPhoneResponse.DESCRIPTOR.fields] == ["has_phone"]
    request = user_pb2.HasPhoneRequest(user_id=alice)
    assert [failure(lambda metadata=metadata: stub.HasPhone(request, metadata=metadata))
            for metadata in (as_user("alice"), as_user("admin"), as_service(jwt_keys, "order"))] == [
        (grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")] * 3
    assert failure(lambda: stub.HasPhone(request)) == (grpc.StatusCode.UNAUTHENTICATED, "AUTH_REQUIRED")


def test_a_nickname_search_for_the_default_nicknames_start_is_refused_not_answered(stub, as_user,
                                                                                  pg_engine: Engine) -> None:
    request = user_pb2.SearchUsersRequest(nickname_prefix="用户")

    assert failure(lambda: stub.SearchUsers(request, metadata=as_user("operator"))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "USER_SEARCH_TOO_BROAD")
    with pg_engine.connect() as conn:
        assert conn.execute(select(user_lookups.c.id)).all() == []


def test_staff_who_serve_shoppers_find_users_masked_and_the_search_is_audited_as_them(
        stub, as_user, accounts, pg_engine: Engine) -> None:
    request = user_pb2.SearchUsersRequest(phone="13900000002")

    assert failure(lambda: stub.SearchUsers(request, metadata=as_user("alice"))) == (
        grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")
    found = stub.SearchUsers(request, metadata=as_user("operator"))
    assert failure(lambda: stub.SearchUsers(user_pb2.SearchUsersRequest(), metadata=as_user("admin"))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "USER_SEARCH_EMPTY")

    assert ([(u.id, u.phone_masked) for u in found.users], found.total) == ([(accounts["bob"].id, "139****0002")], 1)
    assert found.users[0].created_at.seconds > 0
    with pg_engine.connect() as conn:
        assert conn.execute(select(user_lookups.c.actor_id, user_lookups.c.criteria, user_lookups.c.user_ids)).all() == [
            (accounts["operator"].id, "phone=139****0002", str(accounts["bob"].id))]


def test_probes_of_a_users_hidden_digits_answer_masked_and_are_audited_apart(stub, as_user, accounts,
                                                                              pg_engine: Engine) -> None:
    bob = accounts["bob"].id or 0
    vault = IdentityVault(IdentityKeys.derived_for_dev(b"test"))

    right = stub.SearchUsers(user_pb2.SearchUsersRequest(phone="13900000002", user_id=bob),
                             metadata=as_user("operator"))
    wrong = stub.SearchUsers(user_pb2.SearchUsersRequest(phone="13900010002", user_id=bob),
                             metadata=as_user("operator"))

    assert ([u.phone_masked for u in right.users], wrong.total) == (["139****0002"], 0)
    with pg_engine.connect() as conn:
        assert conn.execute(select(user_lookups.c.criteria, user_lookups.c.phone_fingerprint)
                            .order_by(user_lookups.c.id)).all() == [
            (f"phone=139****0002 id={bob}", vault.phone_fingerprint("13900000002")),
            (f"phone=139****0002 id={bob}", vault.phone_fingerprint("13900010002"))]


def test_bind_phone_binds_for_the_caller_of_the_token_and_answers_the_masked_profile(
        stub, as_user, accounts, wechat: FakeWechat, pg_uow: Callable[[], SqlUserUnitOfWork]) -> None:
    with pg_uow() as tx:
        wechat_first = User.register_wechat("o-grpc-bind", datetime.now(UTC))
        tx.users.add(wechat_first)
        tx.wechat_accounts.add(WechatAccount(user_id=wechat_first.id or 0, appid=wechat.appid, openid="o-grpc-bind",
                                             unionid=None, bound_at=datetime.now(UTC)))
        tx.commit()
    accounts["wechat_first"] = wechat_first
    code = stub.SendSmsCode(user_pb2.SendSmsCodeRequest(phone="13900000077", purpose="bind")).dev_code

    def bind(openid: str) -> user_pb2.Profile:
        return stub.BindPhone(user_pb2.BindPhoneRequest(phone="13900000077", code=code,
                                                        wechat_code=wechat.code_for(openid)),
                              metadata=as_user("wechat_first"))

    assert failure(lambda: bind("o-thief")) == (grpc.StatusCode.PERMISSION_DENIED, "WECHAT_MISMATCH")
    profile = bind("o-grpc-bind")

    assert (profile.id, profile.phone_masked) == (wechat_first.id, "139****0077")
    assert failure(lambda: stub.BindPhone(user_pb2.BindPhoneRequest(phone="13900000077", code=code),
                                          metadata=as_user("alice"))) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                                          "SMS_CODE_EXPIRED")
