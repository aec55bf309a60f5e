"""A user unit of work that stops inside a use case, for driving races on PostgreSQL step by step."""

from __future__ import annotations

import threading
from typing import Self

from sqlalchemy import Engine

from services.user.db import SqlUserUnitOfWork


class PausedAfter(SqlUserUnitOfWork):
    """A unit of work that stops right after the first call of `repository.method` returns (its locks held, its
    writes not committed), until `go` is set; `paused` is set once it stops."""

    def __init__(self, engine: Engine, repository: str, method: str) -> None:
        super().__init__(engine, "user")
        self.repository, self.method = repository, method
        self.paused, self.go = threading.Event(), threading.Event()

    def __enter__(self) -> Self:
        super().__enter__()
        repository = getattr(self, self.repository)
        call = getattr(repository, self.method)

        def call_then_wait(*args: object, **kwargs: object) -> object:
            result = call(*args, **kwargs)
            if not self.paused.is_set():
                self.paused.set()
                assert self.go.wait(30), "the test never let the paused use case go on"
            return result

        setattr(repository, self.method, call_then_wait)
        return self
