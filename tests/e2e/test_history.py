"""Browsing history through the platform: a logged-in product view -> product-viewed -> the user service."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.platform import Platform

pytestmark = pytest.mark.e2e


def shopper_headers(platform: Platform, phone: str) -> dict[str, str]:
    sent = requests.post(f"{platform.api}/auth/sms-codes", json={"phone": phone, "purpose": "login"}, timeout=10)
    session = requests.post(f"{platform.api}/auth/login/sms", json={"phone": phone, "code": sent.json()["dev_code"]},
                            timeout=10)
    return {"Authorization": f"Bearer {session.json()['access_token']}"}


def test_products_i_view_appear_in_my_history_newest_first_and_clear(platform: Platform) -> None:
    headers = shopper_headers(platform, "13600005678")
    products = requests.get(f"{platform.api}/products", params={"page_size": 2}, timeout=10).json()["items"]
    first, second = (p["id"] for p in products)
    for product_id in (first, second, first):
        assert requests.get(f"{platform.api}/products/{product_id}", headers=headers, timeout=10).status_code == 200

    platform.wait_until_consumed("product-viewed", "user")
    history = requests.get(f"{platform.api}/me/history", headers=headers, timeout=10).json()
    cleared = requests.delete(f"{platform.api}/me/history", headers=headers, timeout=10).json()
    after = requests.get(f"{platform.api}/me/history", headers=headers, timeout=10).json()

    assert ([v["product_id"] for v in history["items"]], history["total"]) == ([first, second], 2)
    assert [v["product"] for v in history["items"]] == [next(p for p in products if p["id"] == first),
                                                        next(p for p in products if p["id"] == second)]
    assert (cleared, after["total"]) == ({"cleared": 2}, 0)


def test_an_anonymous_view_is_nobody_s_history(platform: Platform) -> None:
    headers = shopper_headers(platform, "13600005679")
    product_id = requests.get(f"{platform.api}/products", params={"page_size": 1}, timeout=10).json()["items"][0]["id"]

    requests.get(f"{platform.api}/products/{product_id}", timeout=10)  # no token

    platform.wait_until_consumed("product-viewed", "user")
    assert requests.get(f"{platform.api}/me/history", headers=headers, timeout=10).json()["total"] == 0
