"""A member unit of work whose ledger pauses in its first posting, for the race tests on PostgreSQL."""

from __future__ import annotations

import threading
from typing import Literal, Self

from sqlalchemy import Engine

from services.member.db import SqlMemberUnitOfWork
from tests.fakes import first_call_followed_by, pause


class PausingLedger(SqlMemberUnitOfWork):
    """A unit of work whose ledger, once it has done `step` the first time, sets `reached` and waits for `go`:
    "post", its first posting made (its accounts' rows locked and changed); "_account_ids", its first posting's
    accounts found, before it changes any (or locks any but the wallet's: `lock_wallet` comes first)."""

    def __init__(self, engine: Engine, step: Literal["post", "_account_ids"], reached: threading.Event,
                 go: threading.Event) -> None:
        super().__init__(engine, "member")
        self.step, self.reached, self.go = step, reached, go

    def __enter__(self) -> Self:
        super().__enter__()
        setattr(self.ledger, self.step, first_call_followed_by(getattr(self.ledger, self.step),
                                                               pause(self.reached, self.go)))
        return self
