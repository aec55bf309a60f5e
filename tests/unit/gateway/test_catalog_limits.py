"""Catalogue read limits: reads that reach the product service are counted per address and per IPv6 /48; cached
pages are not."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from mall.product.v1 import product_pb2

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.routes.catalog import CATALOG_READ_LIMITS
from tests.fixtures.fake_services import FakeServices
from tests.unit.gateway.test_catalog_routes import API, phone

SCALE = 0.1  # a tenth of every limit, so a test sends tens of requests, not hundreds
PER_ADDRESS, PER_SITE = (int(limit.count * SCALE) for limit in CATALOG_READ_LIMITS)


@pytest.fixture
def app(settings: GatewaySettings, clients: FakeServices) -> Flask:
    app = create_app(dataclasses.replace(settings, rate_limit_scale=SCALE), clients)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def clients(fake_services: FakeServices) -> FakeServices:
    fake_services.product.SearchProducts.reply = product_pb2.SearchProductsResponse(items=[phone()], total=1)
    fake_services.product.ViewProduct.reply = phone()
    fake_services.product.ListProductReviews.reply = product_pb2.ListReviewsResponse()
    return fake_services


def search(client: FlaskClient, words: str, ip: str = "203.0.113.7") -> int:
    return client.get(f"{API}/products", query_string={"q": words}, environ_base={"REMOTE_ADDR": ip}).status_code


def test_one_address_sending_distinct_searches_is_refused_past_its_limit_before_the_product_service(
        client: FlaskClient, clients: FakeServices) -> None:
    statuses = [search(client, f"junk {n}") for n in range(PER_ADDRESS + 5)]
    refused = client.get(f"{API}/products", query_string={"q": "one more"}, environ_base={"REMOTE_ADDR": "203.0.113.7"})

    assert statuses == [200] * PER_ADDRESS + [429] * 5
    assert (refused.get_json()["error"]["code"], 1 <= int(refused.headers["Retry-After"]) <= 60) == (
        "RATE_LIMITED", True)
    assert len(clients.product.SearchProducts.calls) == PER_ADDRESS


def test_another_address_still_searches_while_a_busy_one_is_refused(client: FlaskClient) -> None:
    for n in range(PER_ADDRESS + 1):
        search(client, f"junk {n}")

    assert search(client, "手机", ip="198.51.100.9") == 200


def test_a_cached_page_read_again_and_again_is_never_refused(client: FlaskClient, clients: FakeServices) -> None:
    statuses = {search(client, "手机") for _ in range(PER_ADDRESS * 3)}

    assert (statuses, len(clients.product.SearchProducts.calls)) == ({200}, 1)


def test_an_ipv6_site_is_capped_by_its_slash_48_however_many_slash_64s_it_uses(client: FlaskClient) -> None:
    subnets = PER_SITE // PER_ADDRESS + 2
    statuses = [search(client, f"junk {subnet} {n}", ip=f"2001:db8:0:{subnet:x}::1")
                for subnet in range(subnets) for n in range(PER_ADDRESS)]

    assert statuses.count(200) == PER_SITE
    assert search(client, "手机", ip="2001:db8:1::1") == 200  # another site


def test_distinct_product_details_count_as_reads_of_the_product_service(client: FlaskClient,
                                                                         clients: FakeServices) -> None:
    statuses = [client.get(f"{API}/products/{product_id}").status_code for product_id in range(1, PER_ADDRESS + 2)]

    assert (statuses[-2:], len(clients.product.ViewProduct.calls)) == ([200, 429], PER_ADDRESS)


def test_a_shoppers_recorded_views_count_even_of_a_cached_page(client: FlaskClient, clients: FakeServices,
                                                              bearer: Callable[..., dict[str, str]]) -> None:
    statuses = [client.get(f"{API}/products/5", headers=bearer()).status_code for _ in range(PER_ADDRESS + 1)]

    assert statuses[-2:] == [200, 429]


def test_review_pages_are_limited_per_address(client: FlaskClient, clients: FakeServices) -> None:
    statuses = [client.get(f"{API}/products/5/reviews", query_string={"page": n}).status_code
                for n in range(1, PER_ADDRESS + 2)]

    assert (statuses[-2:], len(clients.product.ListProductReviews.calls)) == ([200, 429], PER_ADDRESS)


def test_the_catalogue_documents_its_read_limits(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]

    assert "300 a minute per address, 1500 a minute per IPv6 /48" in paths["/api/v1/products"]["get"]["description"]
    assert "300 in any 60s per ip" in paths["/api/v1/products/{product_id}/reviews"]["get"]["description"]
