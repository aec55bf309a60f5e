"""The shop's return address (ORDER_RETURN_ADDRESS): on a return's case while it awaits the goods, nowhere else, and
refused at start when it is not one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mall.order.v1 import after_sale_pb2

from services.common.auth import Caller, caller_var
from services.common.config import ConfigError, ServiceSettings
from services.order import aftersales
from services.order.aftersales import AfterSaleSettings
from services.order.config import OrderServiceSettings
from services.order.domain import Address
from services.order.grpc_api import AfterSaleServicer
from tests.unit.order.conftest import Shop
from tests.unit.order.test_aftersales import FakeRefunder, ask, delivered

DESK = {"name": "售后部", "phone": "0571-88888888", "province": "浙江", "city": "杭州市", "district": "西湖区",
        "detail": "文三路1号 MiniMall 仓库"}
DESK_ADDRESS = Address(name="售后部", phone="0571-88888888", province="浙江省", city="杭州市", district="西湖区",
                       detail="文三路1号 MiniMall 仓库")


def settings_from(tmp_path: Path, environ: dict[str, str]) -> OrderServiceSettings:
    key = tmp_path / "jwt-public.pem"
    key.write_bytes(b"public")
    base = ServiceSettings.from_env("order", {"JWT_PUBLIC_KEY_FILE": str(key), "MINIMALL_ENV": "test"})
    return OrderServiceSettings.from_env(base, environ)


def shopper_reads(servicer: AfterSaleServicer, case_id: int) -> after_sale_pb2.AfterSale:
    token = caller_var.set(Caller(user_id=1, roles=frozenset(), token_id="t"))
    try:
        return servicer.GetAfterSale(after_sale_pb2.GetAfterSaleRequest(id=case_id), None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)


def status_and_address(servicer: AfterSaleServicer, case_id: int) -> tuple[str, tuple[str, ...] | None]:
    read = shopper_reads(servicer, case_id)
    return read.status, return_address_of(read)


def return_address_of(case: after_sale_pb2.AfterSale) -> tuple[str, ...] | None:
    if not case.HasField("return_address"):
        return None
    found = case.return_address
    return found.name, found.phone, found.province, found.city, found.district, found.detail


def test_a_return_shows_the_shops_address_while_it_awaits_the_goods_and_in_no_other_status(
        shop: Shop, tmp_path: Path) -> None:
    settings = settings_from(tmp_path, {"ORDER_RETURN_ADDRESS": json.dumps(DESK)}).after_sales
    servicer = AfterSaleServicer(lambda: shop.uow, FakeRefunder(), settings)
    uow = lambda: shop.uow  # noqa: E731
    order = delivered(shop, (101, 1))
    case = ask(shop, order, {order.lines[0].id or 0: 1}, kind="return_refund")
    seen = [status_and_address(servicer, case.id)]

    aftersales.decide(uow, FakeRefunder(), case_id=case.id, approve=True, reason="send it back", actor="staff:8")
    seen.append(status_and_address(servicer, case.id))
    aftersales.submit_return_shipment(shop.uow, user_id=1, case_id=case.id, carrier="ZTO", tracking_no="R1")
    seen.append(status_and_address(servicer, case.id))
    aftersales.receive_return(uow, FakeRefunder(), case_id=case.id, note="intact", actor="staff:9")
    seen.append(status_and_address(servicer, case.id))

    assert seen == [("REQUESTED", None),
                    ("AWAITING_RETURN", ("售后部", "0571-88888888", "浙江省", "杭州市", "西湖区", "文三路1号 MiniMall 仓库")),
                    ("RETURN_SHIPPED", None), ("REFUNDED", None)]


def test_an_approved_return_shows_no_address_when_the_shop_set_none(shop: Shop) -> None:
    servicer = AfterSaleServicer(lambda: shop.uow, FakeRefunder(), AfterSaleSettings())
    order = delivered(shop, (101, 1))
    case = ask(shop, order, {order.lines[0].id or 0: 1}, kind="return_refund")
    aftersales.decide(lambda: shop.uow, FakeRefunder(), case_id=case.id, approve=True, reason="", actor="staff:8")

    read = shopper_reads(servicer, case.id)

    assert (read.status, return_address_of(read)) == ("AWAITING_RETURN", None)


def test_the_setting_is_read_as_the_address_with_the_provinces_full_name(tmp_path: Path) -> None:
    assert settings_from(tmp_path, {"ORDER_RETURN_ADDRESS": json.dumps(DESK)}).after_sales.return_address == (
        DESK_ADDRESS)
    assert settings_from(tmp_path, {}).after_sales.return_address is None


@pytest.mark.parametrize(("raw", "problem"), [
    ("not json", "must be a JSON object with name, phone, province, city, district, detail"),
    (json.dumps(["售后部"]), "must be a JSON object"),
    (json.dumps({**DESK, "phone": "88888888"}), "phone: must be a mainland mobile number or a landline"),
    (json.dumps({**DESK, "province": "火星"}), "province: must be a provincial-level division"),
    (json.dumps({key: value for key, value in DESK.items() if key != "detail"}), "detail: must be given, as a string"),
    (json.dumps({**DESK, "zip": "310000"}), "zip: unknown"),
    (json.dumps({**DESK, "name": " "}), "name: must be 1-20 characters"),
    (json.dumps({**DESK, "detail": "文三路\n1号"}), "detail: must not contain control characters"),
    (json.dumps({**DESK, "city": 1}), "city: must be given, as a string")])
def test_a_setting_that_is_not_a_usable_return_address_stops_the_service_at_start(
        tmp_path: Path, raw: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="^ORDER_RETURN_ADDRESS ") as refused:
        settings_from(tmp_path, {"ORDER_RETURN_ADDRESS": raw})

    assert problem in str(refused.value)
