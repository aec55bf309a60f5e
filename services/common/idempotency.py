"""Idempotency keys: a request retried with the same key gets the first response, and runs once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from google.protobuf.message import Message
from sqlalchemy import Column, Index, LargeBinary, PrimaryKeyConstraint, String, Table, bindparam, select, update
from sqlalchemy.orm import Session

from services.common.db import CONFLICT_INSERTS, UTCDateTime, create_tables, utcnow
from services.common.errors import Conflict, InvalidInput
from services.common.outbox import LATER_INDEXES, infra_metadata

KEY_MAX_LENGTH = 128
SCOPE_MAX_LENGTH = 128

idempotency_keys = Table(
    "idempotency_keys", infra_metadata,
    Column("scope", String(SCOPE_MAX_LENGTH), nullable=False),  # operation and caller, e.g. "submit-order:user:42"
    Column("key", String(KEY_MAX_LENGTH), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("response", LargeBinary, nullable=True),  # NULL only inside the transaction that claimed the key
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
    Index("ix_idempotency_keys_created_at", "created_at"),  # pruning's (outbox.LATER_INDEXES)
)

# The scopes whose keys are a client's Idempotency-Key: a retry replays the first response only within the replay
# window (IDEMPOTENCY_KEY_RETENTION_DAYS), after which services/common/pruning.py deletes the key and the same key is
# a new request. Every other scope ("order-paid", "balance-payment", ...) is a service's own once-for-ever guard,
# never pruned: a new client-key scope must be listed here, or its keys are simply kept. Plan purchases ("plan:") are
# not listed: their ledger posting is keyed by the client's key for ever, so a key reused after pruning would answer
# "subscribed" without charging or extending anything; kept, the key replays its first answer as the posting does.
REQUEST_KEY_SCOPES = ("submit-order:", "cancel-unshipped:", "coupon-claim:", "withdrawal:", "recharge:",
                      "product-create:", "coupon-template-create:", "category-create:", "brand-create:",
                      "stock-adjust:")


# The statements of run_once, built once: building them per call (and SQLAlchemy walking each new statement for
# its cache key) cost ~0.25 ms of CPU per idempotent request; a prebuilt statement's cache key is memoised.
_KEY_IS = (idempotency_keys.c.scope == bindparam("scope_"), idempotency_keys.c.key == bindparam("key_"))
CLAIMS = {name: insert(idempotency_keys).values(
              scope=bindparam("scope"), key=bindparam("key"), request_hash=bindparam("request_hash"), response=None,
              created_at=bindparam("created_at"))
          .on_conflict_do_nothing(index_elements=[idempotency_keys.c.scope, idempotency_keys.c.key])
          .returning(idempotency_keys.c.key)
          for name, insert in CONFLICT_INSERTS.items()}
FIRST = select(idempotency_keys.c.request_hash, idempotency_keys.c.response).where(*_KEY_IS)
RESPOND = update(idempotency_keys).where(*_KEY_IS).values(response=bindparam("response"))


def fingerprint(request: Message | bytes) -> str:
    """SHA-256 of the request (a protobuf message is serialised deterministically)."""
    data = request.SerializeToString(deterministic=True) if isinstance(request, Message) else request
    return hashlib.sha256(data).hexdigest()


def canonical(fields: object) -> bytes:
    """`fields` (dicts, lists, tuples, strings, numbers; anything else as its str(), a datetime say) as bytes that are
    the same for the same values whatever the dicts' key order: a use case's request for run_once when its input is
    not one protobuf message."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def validate(scope: str, key: str) -> None:
    """InvalidInput IDEMPOTENCY_KEY_INVALID unless `key` is 1-128 printable ASCII characters."""
    if not (0 < len(key) <= KEY_MAX_LENGTH and key.isascii() and key.isprintable()):
        raise InvalidInput("IDEMPOTENCY_KEY_INVALID", f"the idempotency key must be 1-{KEY_MAX_LENGTH} printable "
                           "ASCII characters", details={"idempotency_key": "invalid"})
    if not 0 < len(scope) <= SCOPE_MAX_LENGTH:
        raise ValueError(f"idempotency scope must be 1-{SCOPE_MAX_LENGTH} characters")


def key_reused() -> Conflict:
    return Conflict("IDEMPOTENCY_KEY_REUSED", "this idempotency key was used for a different request",
                    details={"idempotency_key": "reused"})


def replay(session: Session, *, scope: str, key: str, request: Message | bytes) -> bytes | None:
    """The response a committed first request stored under (scope, key), read before the use case checks anything:
    a retry answers what the first did even when the request would no longer pass (a date now past, a service it
    asks now down). None when the key is new (or its first request is still running): check the request, then
    run_once, which still decides between racing requests. Another request under the key: Conflict
    IDEMPOTENCY_KEY_REUSED, as run_once would answer."""
    validate(scope, key)
    first = session.execute(FIRST, {"scope_": scope, "key_": key}).first()
    if first is None or first.response is None:
        return None
    if first.request_hash != fingerprint(request):
        raise key_reused()
    return first.response


def run_once(session: Session, *, scope: str, key: str, request: Message | bytes,
             execute: Callable[[], bytes]) -> bytes:
    """`execute()`'s response, run at most once per (scope, key); call it inside the use case's transaction.

    The first request claims the key and runs `execute` (its response is stored with the
    transaction's commit). A retry with the same request gets the stored response without
    running anything; with a different request, Conflict IDEMPOTENCY_KEY_REUSED. Concurrent
    requests with one key wait for the first to end: exactly one runs. A transaction that rolls
    back (a domain error, say) stores nothing, so a retry runs again.
    """
    validate(scope, key)
    request_hash = fingerprint(request)
    # On PostgreSQL the insert waits while another transaction holds an uncommitted row for the
    # key, then inserts nothing if that one committed (and claims the key if it rolled back). One
    # statement: no savepoint is needed to keep our transaction usable, as no error is raised.
    claimed = session.execute(CLAIMS[session.get_bind().dialect.name], {
        "scope": scope, "key": key, "request_hash": request_hash, "created_at": utcnow()}).first() is not None
    if not claimed:
        first = session.execute(FIRST, {"scope_": scope, "key_": key}).one()
        if first.request_hash != request_hash:
            raise key_reused()
        if first.response is None:  # only if a use case commits between claiming the key and responding
            raise RuntimeError(f"idempotency key of {scope} committed without its response")
        return first.response
    response = execute()
    session.execute(RESPOND, {"scope_": scope, "key_": key, "response": response})
    return response


def create_idempotency_table(op) -> None:  # type: ignore[no-untyped-def]
    """Create idempotency_keys; called by each service's revision 0002 (its shape is version 1 of the table)."""
    create_tables(op.get_bind(), [idempotency_keys], leaving_out=LATER_INDEXES)
