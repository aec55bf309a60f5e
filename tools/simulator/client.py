"""A typed client of the simulator's /sim/ test hooks, for test fixtures, e2e tests and dev seeding."""

from __future__ import annotations

from typing import Any

import requests


class SimulatorClient:
    def __init__(self, base_url: str, timeout_seconds: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              params: dict[str, str] | None = None) -> dict[str, Any]:
        response = requests.request(method, f"{self.base_url}{path}", json=body, params=params,
                                    timeout=self.timeout_seconds)
        response.raise_for_status()
        return response.json()

    def healthy(self) -> bool:
        try:
            return self._call("GET", "/sim/healthz") == {"status": "ok"}
        except requests.RequestException:
            return False

    def reset(self) -> None:
        self._call("POST", "/sim/reset")

    def advance_clock(self, seconds: float) -> None:
        self._call("POST", "/sim/clock", {"advance_seconds": seconds})

    def wechat_login_code(self, openid: str | None = None, unionid: str | None = None) -> str:
        """A fresh single-use wx.login code for `openid` (a random openid when None)."""
        body = {k: v for k, v in {"openid": openid, "unionid": unionid}.items() if v is not None}
        return self._call("POST", "/sim/wechat/login-code", body)["code"]

    def wechat_fail_next(self, errcode: int) -> None:
        self._call("POST", "/sim/wechat/fail-next", {"errcode": errcode})

    def sms_messages(self, phone: str) -> list[dict[str, Any]]:
        """Messages delivered to `phone`, newest first."""
        return self._call("GET", "/sim/sms/messages", params={"phone": phone})["messages"]

    def last_sms_code(self, phone: str) -> str | None:
        messages = self.sms_messages(phone)
        return messages[0]["code"] if messages else None

    def sms_fail_next(self, code: str) -> None:
        self._call("POST", "/sim/sms/fail-next", {"code": code})

    def register_identity(self, real_name: str, id_number: str) -> None:
        """The registry knows `id_number` as `real_name`'s: any other name is a mismatch (-1)."""
        self._call("POST", "/sim/realname/identities", {"real_name": real_name, "id_number": id_number})

    def register_no_record(self, id_number: str) -> None:
        """The registry has no record of `id_number` (-5)."""
        self._call("POST", "/sim/realname/identities", {"id_number": id_number, "no_record": True})

    def realname_fail_next(self, *, result: str | None = None, error: str | None = None) -> None:
        body = {"result": result} if result is not None else {"error": error}
        self._call("POST", "/sim/realname/fail-next", body)

    def wechatpay_pay(self, out_trade_no: str, *, notify: bool = True, tamper: str | None = None) -> dict[str, Any]:
        """The payer pays the prepaid order in full; the answer has notify_status, notify_answer and the notify sent.

        notify=False: paid, but the notify is lost (reconciliation must find it). tamper: one of
        tools.simulator.wechatpay.TAMPERS; the order stays unpaid and only the spoilt notify is sent.
        """
        body: dict[str, Any] = {"out_trade_no": out_trade_no, "notify": notify}
        if tamper is not None:
            body["tamper"] = tamper
        return self._call("POST", "/sim/pay", body)

    def wechatpay_fail_next(self, status: int, code: str, message: str) -> None:
        """The next WeChat Pay API call (signed correctly) is refused: HTTP `status`, signed {"code", "message"}."""
        self._call("POST", "/sim/wechatpay/fail-next", {"status": status, "code": code, "message": message})

    def wechatpay_refund_complete(self, out_refund_no: str, status: str = "SUCCESS",
                                  tamper: str | None = None) -> dict[str, Any]:
        """The refund ends (SUCCESS, CLOSED or ABNORMAL) and its notify goes to the refund's notify_url."""
        body: dict[str, Any] = {"out_refund_no": out_refund_no, "status": status}
        if tamper is not None:
            body["tamper"] = tamper
        return self._call("POST", "/sim/refund-complete", body)

    def alipay_pay(self, order_string: str, *, notify: bool = True, tamper: str | None = None) -> dict[str, Any]:
        """The buyer pays an Alipay app-pay order string; its signed notify goes to the order's notify_url.

        tamper: one of tools.simulator.alipay.TAMPERS (only the spoilt notify is sent)."""
        body: dict[str, Any] = {"order_string": order_string, "notify": notify}
        if tamper is not None:
            body["tamper"] = tamper
        return self._call("POST", "/sim/alipay/pay", body)

    def alipay_open(self, order_string: str) -> dict[str, Any]:
        """The buyer opens an Alipay app-pay order string and leaves without paying: the trade is WAIT_BUYER_PAY."""
        return self._call("POST", "/sim/alipay/open", {"order_string": order_string})

    def alipay_query_tamper(self, out_trade_no: str, tamper: str | None) -> None:
        """Spoil the gateway's alipay.trade.query answers about a paid trade (tools.simulator.web.QUERY_TAMPERS)."""
        self._call("POST", "/sim/alipay/query-tamper", {"out_trade_no": out_trade_no, "tamper": tamper})

    def bankcard_pay(self, pay_params: dict[str, str], *, status: str = "SUCCESS", notify: bool = True,
                     tamper: str | None = None) -> dict[str, Any]:
        """The cardholder pays at the bank-card cashier; its signed callback goes to the notify_url (unless
        notify is False: a lost callback).

        tamper: one of tools.simulator.bankcard.TAMPERS."""
        body: dict[str, Any] = {"pay_params": pay_params, "status": status, "notify": notify}
        if tamper is not None:
            body["tamper"] = tamper
        return self._call("POST", "/sim/bankcard/pay", body)

    def bankcard_query_tamper(self, out_trade_no: str, tamper: str | None) -> None:
        """Spoil the status query's answers about a payment (tools.simulator.web.QUERY_TAMPERS)."""
        self._call("POST", "/sim/bankcard/query-tamper", {"out_trade_no": out_trade_no, "tamper": tamper})

    def wechatpay_transfers(self, openid: str) -> list[dict[str, Any]]:
        """The merchant transfers (payouts) made to `openid`."""
        return self._call("GET", "/sim/wechatpay/transfers", params={"openid": openid})["transfers"]

    def wechatpay_transfer_next(self, *, state: str | None = None, lose_answer: bool = False) -> None:
        """The next new transfer starts in `state` (e.g. PROCESSING: in flight) and/or has its answer lost."""
        self._call("POST", "/sim/transfer/next", {"state": state, "lose_answer": lose_answer})

    def wechatpay_transfer_confirm(self, out_bill_no: str, package: str | None = None) -> dict[str, Any]:
        """The user confirms receipt of a transfer awaiting them (wx.requestMerchantTransfer): it becomes SUCCESS."""
        return self._call("POST", "/sim/transfer/confirm",
                          {"out_bill_no": out_bill_no, **({"package": package} if package is not None else {})})

    def wechatpay_transfer_settle(self, out_bill_no: str, state: str) -> dict[str, Any]:
        """A transfer in flight ends SUCCESS, FAIL or CANCELLED."""
        return self._call("POST", "/sim/transfer/settle", {"out_bill_no": out_bill_no, "state": state})

    def wechatpay_order(self, out_trade_no: str) -> dict[str, Any]:
        """What the prepay recorded (amount, notify_url, time_expire, prepay_id...) and the trade_state."""
        return self._call("GET", "/sim/wechatpay/orders", params={"out_trade_no": out_trade_no})

    def wechatpay_merchant(self) -> dict[str, Any]:
        return self._call("GET", "/sim/wechatpay/merchant")
