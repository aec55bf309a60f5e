"""The unit of work every use case runs in: one transaction, outbox included."""

from __future__ import annotations

from google.protobuf.message import Message
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from services.common.outbox import add_to_outbox


class UnitOfWork:
    """One database transaction; events added with `publish` commit (or vanish) with it.

    Services subclass it to expose their repositories. Leaving the block without `commit()`
    rolls everything back, outbox rows included.
    """

    def __init__(self, engine: Engine, producer: str) -> None:
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)
        self.producer = producer
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = self._sessions()
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.rollback()
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    def publish(self, event_type: str, aggregate_id: str, payload: Message) -> str:
        """Write an event to the outbox in this transaction (the relay sends it after commit); its event id."""
        return add_to_outbox(self.session, producer=self.producer, event_type=event_type,
                      aggregate_id=aggregate_id, payload=payload)
