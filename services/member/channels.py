"""Money channels the member service talks to: payouts for withdrawals, payment parameters for recharges.

Only local simulated implementations exist yet; the WeChat merchant-transfer, WeChat Pay v3,
Alipay and bank-card adapters implement the same protocols.
"""

from __future__ import annotations

import hashlib
from typing import Protocol


class PayoutFailed(Exception):
    """The channel refused or failed the payout; nothing was paid."""


class PayoutChannel(Protocol):
    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> str:
        """Pay `amount_fen` to the user; idempotent by `payout_no` (a retry pays nothing more).
        Returns the channel's transaction id; raises PayoutFailed."""


class PaymentChannel(Protocol):
    def prepare(self, *, channel: str, out_trade_no: str, amount_fen: int) -> dict[str, str]:
        """The parameters the mini-program needs to pay `out_trade_no` through `channel`."""


class SimulatedPayout:
    """Pays nothing, succeeds always, remembers what it paid (dev and tests)."""

    def __init__(self) -> None:
        self.paid: dict[str, int] = {}

    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> str:
        self.paid.setdefault(payout_no, amount_fen)
        return "SIM" + hashlib.sha256(payout_no.encode()).hexdigest()[:24]


class SimulatedPayment:
    """Payment parameters for the dev simulator, which sends the notify when told to pay."""

    def prepare(self, *, channel: str, out_trade_no: str, amount_fen: int) -> dict[str, str]:
        return {"channel": channel, "out_trade_no": out_trade_no, "amount_fen": str(amount_fen), "simulated": "true"}
