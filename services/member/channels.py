"""Money channels the member service talks to: payouts for withdrawals, payments for recharges.

Recharges (M4) go through one adapter per channel, each over its real protocol adapter in
services/common: WeChat Pay v3 (JSAPI prepay; notify at POST /api/v1/payments/wechat/recharge-notify,
a URL of its own, apart from the orders' notify), Alipay (an RSA2-signed alipay.trade.app.pay
order string; notify at POST /api/v1/payments/alipay/notify) and the bank-card channel (signed
cashier parameters; HMAC-signed callback at POST /api/v1/payments/bankcard/notify). Every notify
is verified by its adapter before anything is credited; none is trusted on its word.

A shopper may close a recharge awaiting payment (`close`): WeChat Pay closes the order
(POST /v3/pay/transactions/out-trade-no/{no}/close), Alipay the trade (alipay.trade.close), and either is then
final, so a CLOSED recharge is never paid again short of a payment that beat the close (credited all the same).
The bank-card channel's protocol has no close: its signed cashier parameters stay payable until their expires_at,
so a bank-card recharge is not closable (RECHARGE_NOT_CLOSABLE) and ends by paying or expiring.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import parse_qsl

from services.common import alipay, bankcard, wechatpay
from services.common.db import utcnow
from services.common.errors import ChannelError, DomainError, ErrorKind
from services.common.formats import TRANSFER_NAMED_FROM_FEN

log = logging.getLogger(__name__)

RECHARGE_SUBJECT = "MiniMall 余额充值"


class PayoutFailed(Exception):
    """The channel refused or failed the payout; nothing was paid."""


class PayoutState(enum.StrEnum):
    PAID = "PAID"              # the money reached the user
    IN_FLIGHT = "IN_FLIGHT"    # accepted, on its way: it ends PAID or FAILED
    FAILED = "FAILED"          # ended without paying: nothing left the merchant
    UNKNOWN = "UNKNOWN"        # no trustworthy answer (lost, timed out): ask again


@dataclass(frozen=True)
class Payout:
    """Where a payout stands at the channel."""

    state: PayoutState
    txn_id: str = ""
    reason: str = ""
    channel: str = ""          # who pays it: "wechat" (a WeChat Pay merchant transfer); member-withdrawn says so
    # IN_FLIGHT, waiting for the shopper to confirm receipt (WeChat Pay's WAIT_USER_CONFIRM): nothing is paid until
    # they do; `confirm` is what the mini-program confirms it with, when this answer carried it (mch_id, app_id and
    # package for wx.requestMerchantTransfer).
    awaits_shopper: bool = False
    confirm: dict[str, str] | None = None


class PayoutChannel(Protocol):
    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        """Pay `amount_fen` to the user; idempotent by `payout_no` (a retry pays nothing more). PAID, IN_FLIGHT
        or UNKNOWN (the answer was lost: the payout may or may not be on its way); raises PayoutFailed when
        refused outright (nothing paid, nothing on its way)."""

    def status(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        """Ask the channel again about the payout `payout_no` (a payout it never received is sent again, the
        same payout_no, so it is still paid once). FAILED only on the channel's word that the payout ended
        unpaid: a refused re-send is UNKNOWN (the first request may still land)."""


class NotifyRejected(ChannelError):
    """A payment notify that must not be trusted (or that pays nothing we know); `reason` is safe to answer."""


@dataclass(frozen=True)
class PaidNotice:
    """What a verified notify (or a query) says about a recharge's payment; the amount in fen. `paying`: not paid
    yet but not over either (WeChat Pay's USERPAYING, the bank-card channel's PENDING): never expired."""

    out_trade_no: str
    paid_fen: int
    txn_id: str
    paid: bool
    paying: bool = False


def never_paid(out_trade_no: str) -> PaidNotice:
    """The channel's word that it knows no payment of `out_trade_no` (none was ever started there)."""
    return PaidNotice(out_trade_no=out_trade_no, paid_fen=0, txn_id="", paid=False)


class ChannelAdapter(Protocol):
    def prepare(self, *, out_trade_no: str, amount_fen: int, user_id: int, now: datetime,
                expires_at: datetime) -> dict[str, str]:
        """The parameters the client pays `out_trade_no` with."""

    def verify(self, headers: Mapping[str, str], body: bytes) -> PaidNotice:
        """The notify, verified; NotifyRejected otherwise."""

    def query(self, out_trade_no: str) -> PaidNotice | None:
        """Ask the channel (reconciliation, expiry): its verified answer (one it knows no payment of is
        `never_paid`); None when it cannot say (no answer, an unverifiable one, no query configured)."""

    def close(self, out_trade_no: str) -> PaidNotice:
        """Close the payment at the channel, so nothing can pay it any more, then how it ended there, verified: paid
        (the payer beat the close) or closed; `paying` when the channel would not close it because the payer is
        paying right now. <CHANNEL>_UNAVAILABLE (503) when the channel gives no trustworthy answer (nothing known to be
        closed); RECHARGE_NOT_CLOSABLE (422) when it cannot close one now: no close in its protocol, or a payment it
        has not registered yet, which could still be paid (never taken for closed)."""


class PaymentChannel(Protocol):
    """What the recharge use cases see: every configured channel by name."""

    def prepare(self, *, channel: str, out_trade_no: str, amount_fen: int, user_id: int, now: datetime,
                expires_at: datetime) -> dict[str, str]: ...

    def verify(self, *, channel: str, headers: Mapping[str, str], body: bytes) -> PaidNotice: ...

    def query(self, *, channel: str, out_trade_no: str) -> PaidNotice | None: ...

    def close(self, *, channel: str, out_trade_no: str) -> PaidNotice: ...


class RechargeChannels:
    """The configured channel adapters, by channel name (wechat, alipay, bank_card)."""

    def __init__(self, adapters: Mapping[str, ChannelAdapter]) -> None:
        self.adapters = dict(adapters)

    def _configured(self, channel: str) -> ChannelAdapter:
        adapter = self.adapters.get(channel)
        if adapter is None:
            raise DomainError("CHANNEL_NOT_CONFIGURED", f"{channel} payments are not configured on this server")
        return adapter

    def prepare(self, *, channel: str, out_trade_no: str, amount_fen: int, user_id: int, now: datetime,
                expires_at: datetime) -> dict[str, str]:
        adapter = self._configured(channel)
        return {"out_trade_no": out_trade_no, **adapter.prepare(out_trade_no=out_trade_no, amount_fen=amount_fen,
                                                                user_id=user_id, now=now, expires_at=expires_at)}

    def verify(self, *, channel: str, headers: Mapping[str, str], body: bytes) -> PaidNotice:
        adapter = self.adapters.get(channel)
        if adapter is None:
            raise NotifyRejected(f"{channel} payments are not configured")
        return adapter.verify(headers, body)

    def query(self, *, channel: str, out_trade_no: str) -> PaidNotice | None:
        adapter = self.adapters.get(channel)
        return adapter.query(out_trade_no) if adapter is not None else None

    def close(self, *, channel: str, out_trade_no: str) -> PaidNotice:
        return self._configured(channel).close(out_trade_no)


class Payers(Protocol):
    def payer_openid(self, user_id: int) -> str:
        """The openid WeChat Pay charges for the user ("" when no WeChat is bound)."""

    def payee_name(self, user_id: int) -> str:
        """The user's verified real name, which a large transfer names its payee by ("" when not verified)."""


class WechatRecharge:
    """WeChat Pay v3 JSAPI for recharges: the mini-program calls wx.requestPayment with the answer."""

    def __init__(self, wechat: wechatpay.WechatPay, payers: Payers, notify_url: str) -> None:
        self.wechat, self.payers, self.notify_url = wechat, payers, notify_url

    def prepare(self, *, out_trade_no: str, amount_fen: int, user_id: int, now: datetime,
                expires_at: datetime) -> dict[str, str]:
        openid = self.payers.payer_openid(user_id)
        if not openid:
            raise wechatpay.wechat_not_bound()
        try:
            prepay_id = self.wechat.jsapi_prepay(out_trade_no=out_trade_no, description=RECHARGE_SUBJECT,
                                                 amount_fen=amount_fen, payer_openid=openid,
                                                 notify_url=self.notify_url, time_expire=expires_at)
        except wechatpay.WechatPayError as exc:
            raise _unavailable("WECHATPAY", exc.reason) from None
        return self.wechat.request_payment_params(prepay_id)

    def verify(self, headers: Mapping[str, str], body: bytes) -> PaidNotice:
        try:
            return _wechat_notice(self.wechat.verify_notify(headers, body))
        except wechatpay.NotifyRejected as exc:
            raise NotifyRejected(exc.reason) from None

    def query(self, out_trade_no: str) -> PaidNotice | None:
        try:
            return _wechat_notice(self.wechat.query_by_out_trade_no(out_trade_no))
        except wechatpay.WechatPayApiError as exc:
            return never_paid(out_trade_no) if exc.means("ORDER_NOT_EXIST") else None
        except wechatpay.WechatPayError:
            return None

    def close(self, out_trade_no: str) -> PaidNotice:
        """Close the order, then query it: once closed WeChat Pay takes no payment, so the query's answer is final
        (SUCCESS when the payer was faster: the close answered ORDERPAID; CLOSED when an earlier close got through,
        ORDER_CLOSED). Every stored recharge's prepay was accepted (create_recharge keeps none whose prepay failed),
        so ORDER_NOT_EXIST from the close or its query means WeChat Pay has not caught up with an order it took
        moments ago (its docs ask for about 5 minutes before closing one): not closable yet, never taken for closed,
        which would leave a payment of it to a notify alone."""
        try:
            try:
                self.wechat.close(out_trade_no)
            except wechatpay.WechatPayApiError as exc:
                if not (exc.means("ORDERPAID") or exc.means("ORDER_CLOSED")):  # paid, or closed already: query
                    raise
            notice = self.wechat.query_by_out_trade_no(out_trade_no)
        except wechatpay.WechatPayApiError as exc:
            if exc.means("ORDER_NOT_EXIST"):
                raise DomainError("RECHARGE_NOT_CLOSABLE", "WeChat Pay has not registered this payment yet, so it "
                                  "cannot be closed now: try again in a few minutes",
                                  details={"channel": "wechat"}) from None
            raise _unavailable("WECHATPAY", exc.reason) from None
        except wechatpay.WechatPayError as exc:
            raise _unavailable("WECHATPAY", exc.reason) from None
        return _wechat_notice(notice)


# WeChat Pay's trade states that are over without a payment; any other but SUCCESS may still be paid
# (USERPAYING) or was paid (REFUND), so it is never taken for unpaid.
WECHAT_UNPAID_ENDS = ("NOTPAY", "CLOSED", "PAYERROR", "REVOKED")


def _wechat_notice(notice: wechatpay.PaymentNotice) -> PaidNotice:
    return PaidNotice(out_trade_no=notice.out_trade_no, paid_fen=notice.amount_total_fen,
                      txn_id=notice.transaction_id or "", paid=notice.trade_state == "SUCCESS",
                      paying=notice.trade_state not in ("SUCCESS", *WECHAT_UNPAID_ENDS))


def _unavailable(channel: str, reason: str) -> DomainError:
    return DomainError(f"{channel}_UNAVAILABLE", f"the payment channel did not answer: {reason}",
                       kind=ErrorKind.UNAVAILABLE)


class AlipayRecharge:
    """Alipay app pay: the client hands `order_string` to the Alipay SDK; Alipay notifies form-encoded."""

    def __init__(self, client: alipay.Alipay, notify_url: str) -> None:
        self.client, self.notify_url = client, notify_url

    def prepare(self, *, out_trade_no: str, amount_fen: int, user_id: int, now: datetime,
                expires_at: datetime) -> dict[str, str]:
        return {"order_string": self.client.app_pay_order_string(
            out_trade_no=out_trade_no, amount_fen=amount_fen, subject=RECHARGE_SUBJECT, notify_url=self.notify_url,
            now=now, time_expire=expires_at)}

    def verify(self, headers: Mapping[str, str], body: bytes) -> PaidNotice:
        try:
            params = dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True))
            notice = self.client.verify_notify(params)
        except (UnicodeDecodeError, ValueError):
            raise NotifyRejected("the body is not a form-encoded Alipay notify") from None
        except alipay.NotifyRejected as exc:
            raise NotifyRejected(exc.reason) from None
        return _alipay_notice(notice)

    def query(self, out_trade_no: str) -> PaidNotice | None:
        """alipay.trade.query, its answer verified; None when Alipay cannot say (asked again next round)."""
        try:
            notice = self.client.query_trade(out_trade_no, now=utcnow())
        except alipay.AlipayError as exc:
            log.warning("alipay.trade.query for %s: %s", out_trade_no, exc.reason)
            return None
        return never_paid(out_trade_no) if notice is None else _alipay_notice(notice)

    def close(self, out_trade_no: str) -> PaidNotice:
        """alipay.trade.close, then alipay.trade.query for how the trade ended (TRADE_CLOSED is final; a paid one
        refuses the close with ACQ.TRADE_STATUS_ERROR and the query says it was paid). A trade Alipay has not seen
        (ACQ.TRADE_NOT_EXIST: the shopper never opened the order string in Alipay) cannot be closed, and its order
        string stays payable until its time_expire: not closable now."""
        try:
            self.client.close_trade(out_trade_no, now=utcnow())
        except alipay.AlipayApiError as exc:
            if exc.sub_code == "ACQ.TRADE_NOT_EXIST":
                raise DomainError("RECHARGE_NOT_CLOSABLE", "Alipay has not seen this payment yet, so it cannot be "
                                  "closed: it can still be paid until its pay_deadline, or it expires after it",
                                  details={"channel": "alipay"}) from None
            if exc.sub_code != "ACQ.TRADE_STATUS_ERROR":  # paid (or closed) already: the query says which
                raise _unavailable("ALIPAY", exc.reason) from None
        except alipay.AlipayError as exc:
            raise _unavailable("ALIPAY", exc.reason) from None
        notice = self.query(out_trade_no)
        if notice is None or notice.out_trade_no != out_trade_no:
            raise _unavailable("ALIPAY", "alipay.trade.query after the close gave no usable answer")
        return notice


def _alipay_notice(notice: alipay.TradeNotice) -> PaidNotice:
    # WAIT_BUYER_PAY: Alipay closes the trade at its time_expire, so until it says TRADE_CLOSED it may be paid.
    return PaidNotice(out_trade_no=notice.out_trade_no, paid_fen=notice.total_fen, txn_id=notice.trade_no,
                      paid=notice.paid, paying=notice.trade_status == "WAIT_BUYER_PAY")


class BankcardRecharge:
    """The bank-card channel: the client posts the signed parameters to the channel's cashier page."""

    def __init__(self, client: bankcard.Bankcard, notify_url: str) -> None:
        self.client, self.notify_url = client, notify_url

    def prepare(self, *, out_trade_no: str, amount_fen: int, user_id: int, now: datetime,
                expires_at: datetime) -> dict[str, str]:
        return self.client.cashier_params(out_trade_no=out_trade_no, amount_fen=amount_fen,
                                          notify_url=self.notify_url, expires_at=int(expires_at.timestamp()))

    def verify(self, headers: Mapping[str, str], body: bytes) -> PaidNotice:
        try:
            payment = self.client.verify_notify(headers, body)
        except bankcard.NotifyRejected as exc:
            raise NotifyRejected(exc.reason) from None
        return _bankcard_notice(payment)

    def query(self, out_trade_no: str) -> PaidNotice | None:
        """The channel's signed status query, verified; None when it cannot say (asked again next round) or
        no query URL is configured."""
        if self.client.settings.query_url is None:
            return None
        try:
            payment = self.client.query_payment(out_trade_no)
        except bankcard.NotifyRejected as exc:
            log.warning("bank-card query for %s: %s", out_trade_no, exc.reason)
            return None
        return never_paid(out_trade_no) if payment is None else _bankcard_notice(payment)

    def close(self, out_trade_no: str) -> PaidNotice:
        """The channel's protocol has no close: its cashier parameters stay payable until their expires_at, so the
        recharge cannot be closed (RECHARGE_NOT_CLOSABLE). The channel is asked first all the same, so one already
        paid (its callback not yet here) is answered paid and credited."""
        notice = self.query(out_trade_no)
        if notice is not None and notice.paid and notice.out_trade_no == out_trade_no:
            return notice
        raise DomainError("RECHARGE_NOT_CLOSABLE", "a bank-card payment cannot be closed at the channel: it can "
                          "still be paid until its pay_deadline, or it expires after it",
                          details={"channel": "bank_card"})


def _bankcard_notice(payment: bankcard.CardPayment) -> PaidNotice:
    return PaidNotice(out_trade_no=payment.out_trade_no, paid_fen=payment.amount_fen, txn_id=payment.trade_no,
                      paid=payment.paid, paying=payment.status == "PENDING")


class WechatTransferPayout:
    """Withdrawals paid to the shopper's WeChat balance by a WeChat Pay merchant transfer (商家转账).

    The bill number is the withdrawal number, so a retry after a lost answer or a lost commit is the
    same transfer at WeChat Pay, never a second one. A transfer on its way (ACCEPTED, PROCESSING,
    WAIT_USER_CONFIRM, TRANSFERING, CANCELING) is IN_FLIGHT until WeChat Pay answers SUCCESS, FAIL or
    CANCELLED to the transfer-bill query (`status`); a bill WeChat Pay never received (NOT_FOUND) is sent again,
    and a refusal of that re-send is no end (`_send_again`). WAIT_USER_CONFIRM (and TRANSFERING) await the
    shopper: the mini-program calls wx.requestMerchantTransfer with `confirm` (the bill's package_info) and only then
    is it paid; unconfirmed, WeChat Pay cancels it after 24 hours (CANCELLED: FAILED, the money back to the wallet).
    From TRANSFER_NAMED_FROM_FEN (2,000 yuan) the bill names the payee by their verified real name, which WeChat Pay
    checks against the WeChat account (another name: FAIL); a shopper who has not verified one is refused before.
    """

    REFUSED = ("FAIL", "CANCELLED")
    CHANNEL = "wechat"

    def __init__(self, wechat: wechatpay.WechatPay, payers: Payers) -> None:
        self.wechat, self.payers = wechat, payers

    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        openid = self.payers.payer_openid(user_id)
        if not openid:
            raise PayoutFailed("the shopper has no WeChat bound to receive the transfer")
        user_name = None
        if amount_fen >= TRANSFER_NAMED_FROM_FEN:
            user_name = self.payers.payee_name(user_id)
            if not user_name:
                raise PayoutFailed(f"a transfer of {TRANSFER_NAMED_FROM_FEN} fen or more names the payee, and the "
                                   "shopper has not verified their identity: they may verify it and withdraw again")
        try:
            bill = self.wechat.transfer(out_bill_no=payout_no, openid=openid, amount_fen=amount_fen,
                                        remark="会员余额提现", user_name=user_name)
        except wechatpay.WechatPayApiError as exc:
            raise PayoutFailed(f"{exc.code}: {exc.message}") from None
        except wechatpay.WechatPayError as exc:
            log.warning("transfer %s: no trustworthy answer (%s); it is asked about again", payout_no, exc.reason)
            return Payout(PayoutState.UNKNOWN, reason=exc.reason)
        if bill.state in self.REFUSED:
            raise PayoutFailed(f"the transfer ended {bill.state} ({bill.fail_reason or 'no reason given'})")
        return self._payout(bill)

    def status(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        try:
            bill = self.wechat.query_transfer(payout_no)
        except wechatpay.WechatPayApiError as exc:
            if exc.code != "NOT_FOUND":
                return Payout(PayoutState.UNKNOWN, reason=exc.reason)
            return self._send_again(payout_no=payout_no, user_id=user_id, amount_fen=amount_fen)
        except wechatpay.WechatPayError as exc:
            return Payout(PayoutState.UNKNOWN, reason=exc.reason)
        return self._payout(bill)

    def _send_again(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        """The same bill again, for a transfer the bill query did not find (the first request may have been lost
        on its way, or may not be visible to the query yet). A refusal of this re-send (NOT_ENOUGH,
        FREQUENCY_LIMITED, INVALID_REQUEST, no WeChat bound any more) proves nothing about the first request, which
        may still succeed: UNKNOWN, so the withdrawal stays PAYING and is asked about again; only the bill's own
        FAIL or CANCELLED ends it unpaid (a refusal of the very first send, when nothing was ever accepted, is
        `pay`'s PayoutFailed)."""
        try:
            return self.pay(payout_no=payout_no, user_id=user_id, amount_fen=amount_fen)
        except PayoutFailed as refused:
            log.error("transfer %s: not found by the query, and its re-send was refused (%s); it stays PAYING and "
                      "is asked about again", payout_no, refused)
            return Payout(PayoutState.UNKNOWN, reason=f"re-send refused: {refused}")

    def _payout(self, bill: wechatpay.TransferBill) -> Payout:
        if bill.state == "SUCCESS":
            return Payout(PayoutState.PAID, bill.transfer_bill_no, channel=self.CHANNEL)
        if bill.state in self.REFUSED:
            return Payout(PayoutState.FAILED, bill.transfer_bill_no, f"{bill.state} {bill.fail_reason or ''}".strip())
        if bill.state not in wechatpay.TRANSFER_AWAITING_USER:
            return Payout(PayoutState.IN_FLIGHT, bill.transfer_bill_no)
        confirm = ({"mch_id": self.wechat.settings.mchid, "app_id": self.wechat.settings.appid,
                    "package": bill.package_info} if bill.package_info else None)  # the bill query brings none
        return Payout(PayoutState.IN_FLIGHT, bill.transfer_bill_no, awaits_shopper=True, confirm=confirm)


class UnconfiguredPayout:
    """No payout channel: every approval is refused, nothing is paid (never a silent success)."""

    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        raise PayoutFailed("no payout channel is configured on this server")

    def status(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        return Payout(PayoutState.UNKNOWN, reason="no payout channel is configured on this server")
