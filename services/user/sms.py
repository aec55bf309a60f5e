"""SMS providers that deliver verification codes."""

from __future__ import annotations

import logging
from typing import Protocol

from services.common.logs import mask_phone

log = logging.getLogger(__name__)


class SmsSender(Protocol):
    # True only for the dev provider: the API then returns the code as `dev_code`.
    reveals_code: bool

    def send_code(self, phone: str, code: str, purpose: str) -> None: ...


class ConsoleSms:
    """Dev provider: sends nothing; the code comes back in the API response instead."""

    reveals_code = True

    def send_code(self, phone: str, code: str, purpose: str) -> None:
        log.info("console SMS provider: %s code issued to %s (returned as dev_code)", purpose, mask_phone(phone))


def make_sms_sender(provider: str) -> SmsSender:
    if provider == "console":
        return ConsoleSms()
    raise ValueError(f"unknown SMS provider {provider!r}")
