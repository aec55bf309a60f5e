"""The reliability battery (issue 14), item by item: which tests prove each promise.

Tests written for the battery live in tests/reliability/ and carry the `reliability` marker
themselves. Others were written with their feature and live beside it; this catalogue lends them
the marker (tests/conftest.py), so `make test-reliability` (`pytest -m reliability`) runs the
whole battery, and a renamed or deleted test listed here fails the collection instead of silently
leaving a hole in it.
"""

from __future__ import annotations

BATTERY: dict[str, list[str]] = {
    "1 notify replay, sequential and concurrent": [
        "tests/integration/order/test_order_grpc.py::test_one_signed_notify_50_times_in_sequence_then_50_concurrently_pays_once",
        "tests/integration/order/test_order_grpc.py::test_fifty_first_notifies_at_once_make_one_transition_and_one_order_paid",
        "tests/integration/order/test_refunds.py::test_a_refund_notify_replayed_in_sequence_and_concurrently_settles_once",
        "tests/integration/member/test_member_grpc.py::test_an_alipay_notify_sent_fifty_times_at_once_credits_once_and_forged_ones_nothing",
    ],
    "2 forged, tampered, wrong-amount, unknown-serial notifies": [
        "tests/integration/order/test_order_grpc.py::test_a_tampered_notify_is_rejected_and_changes_nothing",
        "tests/integration/order/test_refunds.py::test_a_forged_or_tampered_refund_notify_is_rejected_and_changes_nothing",
        "tests/unit/common/test_wechatpay.py",
    ],
    "3 lost notify, reconciliation pays": [
        "tests/integration/order/test_order_grpc.py::test_a_lost_notify_is_found_by_reconciliation_and_pays_once",
        "tests/integration/order/test_refunds.py::test_a_lost_refund_notify_is_found_by_the_refund_query_and_settles_once",
        "tests/integration/member/test_recharge_reconciliation.py",
        "tests/integration/member/test_payout_settlement.py",
    ],
    "4 flash-sale oversell, expired reservations released": [
        "tests/e2e/test_order_flow.py::test_a_flash_sale_of_100_units_to_1000_concurrent_orders_sells_exactly_100_and_never_fails_with_a_5xx",
        "tests/integration/order/test_flash_sale.py",
        "tests/integration/order/test_refunds.py::test_twenty_concurrent_refunds_of_a_line_never_refund_more_than_the_line",
        "tests/integration/product/test_inventory.py::test_concurrent_replays_of_one_reservation_take_stock_once",
        "tests/integration/product/test_inventory.py::test_the_sweep_releases_expired_reservations_and_leaves_live_ones",
    ],
    "5 concurrent withdrawals beyond the balance, Idempotency-Key replay": [
        "tests/integration/member/test_member_grpc.py::test_fifty_concurrent_withdrawals_of_6000_from_10000_accept_exactly_one",
        "tests/integration/member/test_member_grpc.py::test_the_same_idempotency_key_twenty_times_makes_one_withdrawal",
        "tests/integration/member/test_member_grpc.py::test_ten_recharge_requests_at_once_with_one_key_start_one_recharge",
        "tests/integration/member/test_recharge_races_on_database.py",
    ],
    "6 hypothesis state machine over the ledgers": [
        "tests/integration/member/test_ledger_machine_on_databases.py",
        "tests/unit/member/test_ledger_machine.py",
    ],
    "7 relay and consumer SIGKILLed mid-flight": [
        "tests/reliability/test_process_crashes.py",
        "tests/integration/common/test_outbox_and_consumer.py",
    ],
    "8 broker paused during a stream of orders": [
        "tests/reliability/test_broker_pause.py",
    ],
    "9 database cut or slowed during requests": [
        "tests/reliability/test_database_outage.py",
        "tests/reliability/test_database_drop_mid_batch.py",  # under a running consumer: lost COMMIT, ended sessions
        "tests/reliability/test_database_restart.py",  # every service's sessions ended each second, orders paid
    ],
    "10 BOLA and mass assignment from /openapi.json": [
        "tests/reliability/test_access_from_spec.py",
    ],
    "11 token and rate-limit abuse": [
        "tests/reliability/test_token_abuse.py",
        "tests/unit/common/test_auth.py",
        "tests/integration/user/test_sessions.py::test_concurrent_refreshes_with_one_token_all_get_a_pair_that_goes_on_with_the_session",
        "tests/integration/user/test_sessions.py::test_a_token_presented_again_as_the_grace_window_ends_revokes_the_family",
        "tests/integration/user/test_login.py::test_concurrent_wrong_guesses_count_every_try",
    ],
    "12 schemathesis over the whole spec as shopper and admin": [
        "tests/e2e/test_api_contract.py",
    ],
    "audit: cross-service invariants on the running platform": [
        "tests/reliability/test_audit.py",
    ],
}


def listed(nodeid: str) -> str | None:
    """The catalogue entry (a file or a test) that names `nodeid`, parameters ignored; None if none does."""
    test = nodeid.split("[", 1)[0]
    path = test.split("::", 1)[0]
    return next((entry for entries in BATTERY.values() for entry in entries if entry in (test, path)), None)
