"""Real-name check (name + mainland ID number) through Tencent Cloud FaceID IdCardVerification."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import requests

from services.common.errors import DomainError, ErrorKind, InvalidInput, RateLimited
from services.user.config import RealNameSettings

log = logging.getLogger(__name__)

FACEID_SERVICE = "faceid"
FACEID_VERSION = "2018-03-01"
TC3_ALGORITHM = "TC3-HMAC-SHA256"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# GB 11643-1999: weights of the first 17 digits; the check character is CHECK_CHARACTERS[sum % 11].
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARACTERS = "10X98765432"
_ID_NUMBER = re.compile(r"[1-9][0-9]{16}[0-9X]")


def gb11643_check_character(first17: str) -> str:
    """The 18th character of a resident ID number whose first 17 digits are given."""
    return _CHECK_CHARACTERS[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def id_number_is_valid(id_number: str, today: date | None = None) -> bool:
    """18 characters, a real birth date between 1900 and today, and the GB 11643 check character."""
    if not _ID_NUMBER.fullmatch(id_number):
        return False
    try:
        born = date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        return False
    if not date(1900, 1, 1) <= born <= (today or datetime.now(UTC).date()):
        return False
    return gb11643_check_character(id_number[:17]) == id_number[17]


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac_sha256(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def tc3_signature(secret_key: str, *, service: str, timestamp: int, headers: dict[str, str], payload: bytes,
                  method: str = "POST", query: str = "") -> str:
    """Tencent Cloud API 3.0 TC3-HMAC-SHA256 signature (hex) over the given signed headers and payload.

    `headers` are exactly the signed ones; names are lowercased and sorted, values trimmed and lowercased.
    """
    canonical = {name.lower(): value.strip().lower() for name, value in headers.items()}
    names = sorted(canonical)
    canonical_request = "\n".join([method, "/", query, "".join(f"{n}:{canonical[n]}\n" for n in names),
                                   ";".join(names), _sha256_hex(payload)])
    day = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    string_to_sign = "\n".join([TC3_ALGORITHM, str(timestamp), f"{day}/{service}/tc3_request",
                                _sha256_hex(canonical_request.encode())])
    key = _hmac_sha256(_hmac_sha256(_hmac_sha256(f"TC3{secret_key}".encode(), day), service), "tc3_request")
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def tc3_authorization(secret_id: str, secret_key: str, *, service: str, timestamp: int, headers: dict[str, str],
                      payload: bytes) -> str:
    """The Authorization header of a signed POST: algorithm, credential scope, signed headers, signature."""
    day = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    signature = tc3_signature(secret_key, service=service, timestamp=timestamp, headers=headers, payload=payload)
    signed = ";".join(sorted(name.lower() for name in headers))
    return (f"{TC3_ALGORITHM} Credential={secret_id}/{day}/{service}/tc3_request, "
            f"SignedHeaders={signed}, Signature={signature}")


def check_unavailable() -> DomainError:
    return DomainError("IDENTITY_CHECK_UNAVAILABLE", "the real-name check is unavailable right now; try again later",
                       kind=ErrorKind.UNAVAILABLE)


# IdCardVerification's Result codes, as FaceID documents them, and what each means to the shopper.
VERDICTS: dict[str, tuple[type[DomainError], str, str]] = {
    "-1": (DomainError, "IDENTITY_MISMATCH", "the name does not match the ID number"),
    "-2": (InvalidInput, "IDENTITY_ID_NUMBER_INVALID", "the ID number is not a valid mainland resident ID number"),
    "-3": (InvalidInput, "IDENTITY_NAME_INVALID", "the name is not a valid name on a resident ID card"),
    "-5": (DomainError, "IDENTITY_NO_RECORD", "the ID registry has no record of this ID number"),
    "-7": (RateLimited, "IDENTITY_CHECK_RATE_LIMITED", "too many checks of this ID number today; try tomorrow"),
}


class RealNameChecker:
    """Asks FaceID whether a name and an ID number belong together; returns only when they do."""

    def __init__(self, settings: RealNameSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.session = session or requests.Session()

    def signed_request(self, real_name: str, id_number: str,
                       timestamp: int | None = None) -> tuple[dict[str, str], bytes]:
        """Headers and body of an IdCardVerification call."""
        payload = json.dumps({"IdCard": id_number, "Name": real_name}).encode()
        stamp = int(time.time()) if timestamp is None else timestamp
        signed = {"Content-Type": JSON_CONTENT_TYPE, "Host": urlsplit(self.settings.endpoint).netloc}
        authorization = tc3_authorization(self.settings.secret_id, self.settings.secret_key, service=FACEID_SERVICE,
                                          timestamp=stamp, headers=signed, payload=payload)
        return {**signed, "Authorization": authorization, "X-TC-Action": "IdCardVerification",
                "X-TC-Version": FACEID_VERSION, "X-TC-Timestamp": str(stamp)}, payload

    def check(self, real_name: str, id_number: str) -> bool:
        """As an IdentityChecker: True on a match; any other verdict raises its own domain error."""
        self.verify(real_name, id_number)
        return True

    def verify(self, real_name: str, id_number: str) -> None:
        """Return when the name matches the ID number; otherwise raise the domain error for the verdict."""
        headers, payload = self.signed_request(real_name, id_number)
        try:
            response = self.session.post(self.settings.endpoint, data=payload, headers=headers,
                                         timeout=self.settings.timeout_seconds)
            answer = response.json().get("Response")
        except (requests.RequestException, ValueError, AttributeError) as exc:
            log.warning("real-name check: no usable answer (%s)", type(exc).__name__)
            raise check_unavailable() from None
        if not isinstance(answer, dict):
            log.warning("real-name check: answer has no Response object (HTTP %s)", response.status_code)
            raise check_unavailable()
        if isinstance(answer.get("Error"), dict):
            log.error("real-name check refused: %s (RequestId %s)", answer["Error"].get("Code"), answer.get("RequestId"))
            raise check_unavailable()
        result = answer.get("Result")
        if result == "0":
            return
        verdict = VERDICTS.get(str(result))
        if verdict is None:
            # -4 registry error, -6 registry upgrade, anything new: the shopper can only try again later.
            log.warning("real-name check: Result %s (%s)", result, answer.get("Description"))
            raise check_unavailable()
        error, code, message = verdict
        raise error(code, message)
