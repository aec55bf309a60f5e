"""Where uploaded media goes: a storage interface, and the local-directory store `make run` uses."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol


class MediaStorage(Protocol):
    def save(self, data: bytes, *, folder: str, extension: str) -> str:
        """Store `data` under a new random name; the URL (path) it is served at."""


class LocalMediaStorage:
    """Files under `directory`, served by the gateway at /media/... (dev; production: object storage)."""

    def __init__(self, directory: Path, url_prefix: str = "/media") -> None:
        self.directory = directory
        self.url_prefix = url_prefix

    def save(self, data: bytes, *, folder: str, extension: str) -> str:
        name = f"{secrets.token_hex(16)}.{extension}"  # unguessable, and never the client's file name
        target = self.directory / folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        os.replace(partial, target)  # readers never see half a file
        return f"{self.url_prefix}/{folder}/{name}"
