"""Every RPC a proto service declares is implemented by its servicer (the generated base answers UNIMPLEMENTED)."""

from __future__ import annotations

import importlib
import inspect

import pytest

from services.common.config import SERVICES


def servicers() -> list[tuple[type, type]]:
    """(our servicer, the generated base it extends) for every service that has a grpc_api module."""
    found = []
    for service in SERVICES:
        try:
            module = importlib.import_module(f"services.{service}.grpc_api")
        except ModuleNotFoundError:
            continue  # a service with no RPCs yet
        for _, cls in inspect.getmembers(module, inspect.isclass):
            bases = [b for b in cls.__mro__[1:] if b.__module__.startswith("mall.") and b.__name__.endswith("Servicer")]
            if cls.__module__ == module.__name__ and bases:
                found.append((cls, bases[0]))
    return found


@pytest.mark.parametrize(("servicer", "generated"), servicers(), ids=lambda c: c.__name__)
def test_the_servicer_implements_every_rpc_of_its_service(servicer: type, generated: type) -> None:
    declared = {name for name, value in vars(generated).items() if callable(value) and not name.startswith("_")}
    implemented = {name for klass in servicer.__mro__ if klass is not generated and generated in klass.__mro__
                   for name in vars(klass)}

    assert sorted(declared - implemented) == []


def test_every_service_with_rpcs_is_checked() -> None:
    assert {generated.__name__ for _, generated in servicers()} >= {
        "UserServiceServicer", "ProductServiceServicer", "MemberServiceServicer", "AnalyticsServiceServicer"}
