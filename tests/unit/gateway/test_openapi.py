"""The OpenAPI document is valid, declares path parameters, and views answer only what they declare."""

from __future__ import annotations

import pytest
from flask import Blueprint, Flask
from openapi_spec_validator import validate

from gateway.api import Page, PageQuery, Reply, operation
from gateway.app import create_app
from gateway.config import GatewaySettings
from tests.fixtures.fake_services import FakeServices


class Thing(Reply):
    """A thing."""

    id: int
    name: str


def things_app(settings: GatewaySettings, answer: object = None) -> Flask:
    """The gateway with one extra blueprint: a list and a detail route with a path parameter."""
    bp = Blueprint("things", __name__, url_prefix="/api/v1/things")

    @bp.get("")
    @operation(summary="List things", tag="things", query=PageQuery, responses={200: Page[Thing]})
    def list_things(query: PageQuery) -> Page[Thing]:
        everything = [Thing(id=n, name=f"thing {n}") for n in range(1, 46)]
        return Page[Thing].of(everything[query.offset:query.offset + query.page_size], query, total=len(everything))

    @bp.get("/<id:thing_id>")
    @operation(summary="One thing", tag="things", responses={200: Thing})
    def get_thing(thing_id: int) -> object:
        return answer if answer is not None else Thing(id=thing_id, name="a thing")

    app = create_app(settings, FakeServices())
    app.register_blueprint(bp)
    return app


@pytest.fixture
def things(settings: GatewaySettings) -> Flask:
    return things_app(settings)


def test_the_openapi_document_is_valid_openapi_3_1(client) -> None:  # type: ignore[no-untyped-def]
    validate(client.get("/openapi.json").get_json())


def test_a_document_with_path_parameters_and_pages_is_valid_too(things: Flask) -> None:
    validate(things.test_client().get("/openapi.json").get_json())


def test_path_parameters_are_declared_with_their_type(things: Flask) -> None:
    spec = things.test_client().get("/openapi.json").get_json()

    assert spec["paths"]["/api/v1/things/{thing_id}"]["get"]["parameters"] == [
        {"name": "thing_id", "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999}}]


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "1" * 19, "1.5"])
def test_an_id_that_is_not_a_positive_int64_is_not_found(things: Flask, bearer, raw: str) -> None:  # type: ignore[no-untyped-def]
    response = things.test_client().get(f"/api/v1/things/{raw}", headers=bearer())

    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "NOT_FOUND")


def test_a_path_parameter_reaches_the_view_as_an_int(things: Flask, bearer) -> None:  # type: ignore[no-untyped-def]
    response = things.test_client().get("/api/v1/things/123456789012345678", headers=bearer())

    assert (response.status_code, response.get_json()) == (200, {"id": 123456789012345678, "name": "a thing"})


def test_query_values_are_coerced_and_a_page_says_where_it_is(things: Flask, bearer) -> None:  # type: ignore[no-untyped-def]
    response = things.test_client().get("/api/v1/things?page=3&page_size=20", headers=bearer())

    body = response.get_json()
    assert (response.status_code, [t["id"] for t in body["items"]], body["page"], body["page_size"], body["total"]) == (
        200, [41, 42, 43, 44, 45], 3, 20, 45)


@pytest.mark.parametrize(("query", "field"), [("page_size=101", "page_size"), ("page=0", "page"),
                                              ("page=two", "page")])
def test_page_bounds_are_enforced(things: Flask, bearer, query: str, field: str) -> None:  # type: ignore[no-untyped-def]
    response = things.test_client().get(f"/api/v1/things?{query}", headers=bearer())

    assert (response.status_code, list(response.get_json()["error"]["details"])) == (400, [field])


def test_a_view_answering_an_undeclared_model_is_a_500_not_a_silent_contract_break(
        settings: GatewaySettings, bearer) -> None:  # type: ignore[no-untyped-def]
    app = things_app(settings, answer=Page.of([], PageQuery(), total=0))

    response = app.test_client().get("/api/v1/things/1", headers=bearer())

    assert (response.status_code, response.get_json()["error"]["code"]) == (500, "INTERNAL")


def test_a_query_parameter_given_twice_is_refused_not_picked(settings: GatewaySettings, bearer) -> None:  # type: ignore[no-untyped-def]
    client = things_app(settings).test_client()

    reply = client.get("/api/v1/things?page=1&page=2", headers=bearer())

    assert (reply.status_code, reply.get_json()["error"]["details"]) == (400, {"page": "given more than once"})
