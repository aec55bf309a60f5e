"""The ledger state machine on the in-memory unit of work (its database runs are in tests/integration/member)."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, settings

from services.member.uow import MemberUnitOfWork
from tests.unit.member.fakes import FakeMemberUnitOfWork
from tests.unit.member.ledger_machine import ledger_machine


def fresh_store() -> Callable[[], MemberUnitOfWork]:
    uow = FakeMemberUnitOfWork()
    return lambda: uow


LedgerOnFakes = ledger_machine(fresh_store)
LedgerOnFakes.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
test_ledger_operations_keep_every_balance_non_negative_and_equal_to_its_entries = LedgerOnFakes.TestCase
