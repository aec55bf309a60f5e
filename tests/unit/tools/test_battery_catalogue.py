"""The battery's catalogue names tests that exist: a rename cannot silently drop one from `make test-reliability`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.reliability.catalogue import BATTERY, listed

ROOT = Path(__file__).resolve().parents[3]
ENTRIES = [entry for entries in BATTERY.values() for entry in entries]


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_catalogued_test_exists(entry: str) -> None:
    path, _, name = entry.partition("::")
    assert (ROOT / path).is_file(), f"{path} does not exist"
    if name:
        defined = {node.name for node in ast.walk(ast.parse((ROOT / path).read_text()))
                   if isinstance(node, ast.FunctionDef)}
        assert name in defined, f"{path} has no test {name}"


def test_every_item_of_the_issue_has_at_least_one_test() -> None:
    assert len(BATTERY) == 13 and all(BATTERY.values())


def test_a_test_is_listed_by_its_file_or_by_its_name_with_parameters_ignored() -> None:
    assert listed("tests/reliability/test_process_crashes.py::test_x") == "tests/reliability/test_process_crashes.py"
    assert listed("tests/integration/order/test_order_grpc.py::test_a_tampered_notify_is_rejected_and_changes_nothing[x]")
    assert listed("tests/integration/order/test_order_grpc.py::test_my_orders_filter_by_status_and_staff_search_sees_everyone") is None
