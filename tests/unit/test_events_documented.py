"""docs/events.md describes every event the services publish as the code does: its topic, its payload message and
that message's fields, who publishes it and who consumes it; and each payload's proto names its topic.

The producers are the services whose code builds the payload message (services/<name>/, consumers excluded); the
consumers are the services' HANDLERS (handlers()) (and the gateway's catalogue-cache listener of product-changed).
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

from google.protobuf.message import Message

from gateway.catalog_cache import ProductChangedListener
from services.analytics.consumers import HANDLERS as ANALYTICS
from services.common.config import SERVICES
from services.common.events import EVENT_TYPES, TOPICS
from services.member.consumers import handlers as member_handlers
from services.product.consumers import handlers as product_handlers
from services.user.consumers import HANDLERS as USER
from tests.fakes import FakePhones

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "events.md"
PROTOS = ROOT / "protos" / "mall" / "events" / "v1"
CONSUMERS: dict[str, dict[type[Message], object]] = {
    "analytics": ANALYTICS, "member": member_handlers(FakePhones()), "product": product_handlers(None), "user": USER}


def consumers_in_code() -> dict[str, set[str]]:
    """Event type -> the processes consuming it (services, and the gateway for its catalogue cache)."""
    found: dict[str, set[str]] = {topic: set() for topic in TOPICS}
    for service, handlers in CONSUMERS.items():
        for message in handlers:
            found[EVENT_TYPES[message]].add(service)
    listener = Path(__file__).resolve().parents[2] / "gateway" / "catalog_cache.py"
    assert ProductChangedListener.__name__ in listener.read_text(encoding="utf-8")
    found["product-changed"].add("gateway")
    return found


def producers_in_code() -> dict[str, set[str]]:
    """Event type -> the services whose code (consumers aside) builds its payload message."""
    names = {message.__name__: topic for message, topic in EVENT_TYPES.items()}
    found: dict[str, set[str]] = {topic: set() for topic in TOPICS}
    for service in SERVICES:
        for path in sorted((ROOT / "services" / service).rglob("*.py")):
            if path.name == "consumers.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
                    found[names[node.func.id]].add(service)
    return found


def documented_events() -> dict[str, dict[str, object]]:
    """docs/events.md: each `### topic` section's payload message, producers, consumers and field names."""
    sections = re.split(r"^### `([a-z-]+)`\n", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]
    events = {}
    for topic, text in zip(sections[::2], sections[1::2], strict=True):
        body = text.split("\n## ", 1)[0]  # the last one ends where the shared messages begin
        def listed(label: str, body: str = body) -> set[str]:
            line = re.search(rf"^- {label}: (.*)$", body, flags=re.MULTILINE)
            return set(re.findall(r"`([a-z]+)`", line.group(1))) if line else set()

        payload = re.search(r"^- payload: `mall\.events\.v1\.(\w+)`", body, flags=re.MULTILINE)
        retention = re.search(r"^- retention \(deploy/k8s\): (\d+) days?$", body, flags=re.MULTILINE)
        events[topic] = {"payload": payload.group(1) if payload else None,
                         "retention_days": int(retention.group(1)) if retention else None,
                         "producers": listed("published by"), "consumers": listed("consumed by"),
                         "fields": re.findall(r"^\| `(\w+)` \|", body, flags=re.MULTILINE)}
    return events


def test_every_event_type_is_documented_and_nothing_else() -> None:
    assert sorted(documented_events()) == sorted(TOPICS)


def test_each_documented_payload_is_the_message_of_its_topic_with_its_fields() -> None:
    documented = documented_events()

    wrong = {topic: (documented[topic]["payload"], documented[topic]["fields"])
             for message, topic in EVENT_TYPES.items() if topic in documented
             and (documented[topic]["payload"], documented[topic]["fields"])
             != (message.__name__, [field.name for field in message.DESCRIPTOR.fields])}

    assert wrong == {}


def test_each_documented_producer_and_consumer_is_the_codes() -> None:
    documented = documented_events()
    producers, consumers = producers_in_code(), consumers_in_code()

    assert {topic: (documented[topic]["producers"], documented[topic]["consumers"]) for topic in documented} == {
        topic: (producers[topic], consumers[topic]) for topic in documented}


def test_every_payload_message_names_its_topic_in_its_proto() -> None:
    protos = "\n".join(path.read_text(encoding="utf-8") for path in sorted(PROTOS.glob("*.proto")))

    missing = {topic: message.__name__ for message, topic in EVENT_TYPES.items()
               if not re.search(rf'// Topic "{topic}"[^\n]*\n(?://[^\n]*\n)*message {message.__name__} \{{', protos)}

    assert missing == {}


def test_each_documented_retention_is_the_topics_in_deploy_k8s() -> None:
    spec = importlib.util.spec_from_file_location("k8s_generate", ROOT / "deploy" / "k8s" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    day = 24 * 3600 * 1000

    assert {topic: event["retention_days"] for topic, event in documented_events().items()} == {
        topic: generate.SHORT_RETENTION_MS.get(topic, generate.TOPIC_RETENTION_MS) / day for topic in TOPICS}
