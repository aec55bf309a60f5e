"""Structured JSON logs carrying the service name and the current request id."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# Last line of defence for PII in logs (driver errors quote values, e.g. "Key (phone)=(...)"):
# mainland mobile numbers and ID numbers are masked wherever they appear in a line.
_PHONES = re.compile(r"(?<![0-9])(1[3-9][0-9])[0-9]{4}([0-9]{4})(?![0-9])")
_ID_NUMBERS = re.compile(r"(?<![0-9])([0-9]{4})[0-9]{10}([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")

# Keys of a LogRecord that are not user-supplied `extra` fields.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return mask_pii(json.dumps(entry, ensure_ascii=False, default=str))


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stderr as one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("kafka").setLevel(logging.WARNING)


def mask_pii(text: str) -> str:
    """`text` with every phone number and ID number in it masked."""
    return _ID_NUMBERS.sub(r"\1**********\2", _PHONES.sub(r"\1****\2", text))


def mask_phone(phone: str) -> str:
    """138****8000: enough to recognise, not enough to use."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "****"
