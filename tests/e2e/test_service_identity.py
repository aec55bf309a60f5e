"""Service tokens on the whole platform: `make run` hands each service its own, the log never shows one, and the
gateway never accepts one."""

from __future__ import annotations

import re

import jwt
import pytest
import requests

from tests.fixtures.platform import Platform
from tests.fixtures.shop import TIMEOUT, bearer

pytestmark = pytest.mark.e2e

JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")


def test_a_service_token_opens_no_route_of_the_gateway(platform: Platform) -> None:
    reply = requests.get(f"{platform.api}/me", headers=bearer(platform.service_token("order")), timeout=TIMEOUT)

    assert (reply.status_code, reply.json()["error"]["code"]) == (401, "TOKEN_INVALID")


def test_the_platform_log_holds_no_service_token(platform: Platform) -> None:
    """Started, serving, with every service holding its token: none of them appears in any process's output."""
    log = platform.log_file.read_text(errors="replace")
    assert " order |" in log  # the order service, which calls as itself, has written to it

    claims = [jwt.decode(found, options={"verify_signature": False}) for found in JWT.findall(log)]

    assert [claim for claim in claims if "svc" in claim] == []
