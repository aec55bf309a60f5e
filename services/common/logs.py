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
# mainland mobile numbers and ID numbers are masked wherever they stand alone in a line.
# "Alone" means no ASCII letter or digit touches them, so digits inside hex request ids, UUIDs,
# SKUs and longer order or snowflake numbers are left as they are; Chinese text, punctuation and
# an escape sequence still count as a boundary, though the escape ends in a letter or hex digit:
# JSON's "\\n13812345678", "\\f...", "\\u000b..." and the "\\x0b..." of a bytes or protobuf repr.
# Each lookbehind has a fixed width: a boundary costs the same to check anywhere, so masking stays
# linear in the length of the line.
_ALONE_START = r"""(?:
    (?<![0-9A-Za-z])
    | (?<=\\[nrtbf])
    | (?<=\\x[0-9a-fA-F]{2})
    | (?<=\\u[0-9a-fA-F]{4})
)"""
_ALONE_END = r"(?![0-9A-Za-z])"

# 1[3-9]x xxxx xxxx, optionally after +86 / 86 / 0086, written as one run or in 3-4-4 groups
# split by the same space or dash. Masked to the prefix as written plus 138****5678.
_PHONES = re.compile(_ALONE_START + r"""
    ((?:(?:\+|00)?86[ -]?)?1[3-9][0-9])  # country code as written, first three digits: kept
    ([ -]?)[0-9]{4}\2                   # middle four: masked
    ([0-9]{4})                          # last four: kept
""" + _ALONE_END, re.VERBOSE)

# 18-digit resident ID numbers: region (first digit 1-9; 9 is the foreigners' permanent
# residence card), birth date 19xx/20xx-MM-DD, sequence, check digit 0-9/X. Eighteen random
# digits fit that shape well under 0.1% of the time; the check digit is not verified, so a
# mistyped ID number is masked too. Masked to the first four and last four.
# Old 15-digit numbers (YYMMDD birth date) are left alone on purpose: those cards stopped being
# valid in 2013, so the shop has no reason to hold one, and a two-digit year lets about 3% of
# random 15-digit numbers through, fifty times the false positives of the 18-digit shape.
_ID_NUMBERS = re.compile(_ALONE_START + r"""
    ([1-9][0-9]{3})[0-9]{2}                                       # region: first four kept
    (?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])  # birth date: masked
    ([0-9]{3}[0-9Xx])                                             # sequence, check digit: kept
""" + _ALONE_END, re.VERBOSE)

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
    # urllib3 logs every request line, query string included, at DEBUG: code2session's carries the AppSecret and
    # the user's js_code (a GET by WeChat's protocol). Its warnings (retries, pool full) still come through.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


class MaskPii(logging.Filter):
    """Masks a record's message and traceback, for handlers whose formatter is not JsonFormatter (gunicorn's own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask_pii(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_pii(record.exc_text)
        return True


def mask_pii(text: str) -> str:
    """`text` with every phone number and ID number standing alone in it masked."""
    return _ID_NUMBERS.sub(r"\1**********\2", _PHONES.sub(r"\1****\3", text))


def mask_phone(phone: str) -> str:
    """138****8000: enough to recognise, not enough to use."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "****"
