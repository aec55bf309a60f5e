"""Upload names signed for their uploader: a review or an after-sales case names only the caller's own uploads.

POST /uploads stores an image as uploads/<nonce>-<signature>.<ext>: 32 random hex digits, then the first 128 bits
of an HMAC-SHA256 of the uploader's user id and that name, under the rate limiter's key (GATEWAY_RATE_LIMIT_SECRET,
the same in every replica; gateway/ratelimit.py). When a review or an after-sales case names its images, the gateway
signs each name again for the caller: another user's upload carries a signature for someone else and is refused,
400 UPLOAD_NOT_YOURS, before anything is stored. Nothing records who uploaded what, so every worker and replica
checks any upload without asking anyone, and the name does not say who uploaded it (a review's images are public).

Uploads from before the names were signed (uploads/<32 hex>.<ext>) say nothing of their uploader: reviews and cases
that kept one keep it (services.common.formats.UPLOAD_URL still reads both forms), but a new review or case cannot
name one (UPLOAD_NOT_YOURS: upload the photo again). So does an upload signed under a secret since replaced, or,
without GATEWAY_RATE_LIMIT_SECRET (one process, `make run`), by a process since restarted.

Staff product images (PUT /admin/products/{id}, brand logos) are not checked: any of the shop's /media paths or an
https URL, so staff share the images they upload among themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from flask import current_app, g

from gateway.errors import ApiError
from services.common import formats

FOLDER = "uploads"  # of POST /uploads: /media/uploads/<name>
MESSAGE = "the images must be ones you uploaded yourself with POST /uploads; upload the photo again"


class UploadNames:
    """Names new uploads for their uploader and tells whether a name is the caller's."""

    def __init__(self, key: bytes) -> None:
        self.key = key  # the rate limiter's key: replicas share it

    def new(self, user_id: int, extension: str) -> str:
        """A new name in the uploads folder, uploads/<nonce>-<signature>.<extension>, signed for `user_id`."""
        nonce = secrets.token_hex(16)  # unguessable, and never the client's file name
        return f"{FOLDER}/{nonce}-{self._signature(user_id, nonce, extension)}.{extension}"

    def made_by(self, url: str, user_id: int) -> bool:
        """Whether `url` (/media/uploads/...) names an upload `user_id` made; False for an unsigned (older) one."""
        match = formats.SIGNED_UPLOAD_URL_PATTERN.fullmatch(url)
        if match is None:
            return False
        nonce, signature, extension = match.groups()
        return hmac.compare_digest(signature, self._signature(user_id, nonce, extension))

    def _signature(self, user_id: int, nonce: str, extension: str) -> str:
        message = f"upload\x1f{user_id}\x1f{nonce}.{extension}".encode()  # its own prefix: no rate-limit bucket signs the same
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()[:32]


def require_own_uploads(urls: Sequence[str], *, field: str = "images") -> None:
    """400 UPLOAD_NOT_YOURS naming each of `urls` (already of the form services.common.formats.UPLOAD_URL) that the
    caller did not upload; nothing is asked of any service before this."""
    names: UploadNames = current_app.extensions["upload_names"]
    foreign = {f"{field}.{index}": "not uploaded by you" for index, url in enumerate(urls)
               if not names.made_by(url, g.caller.user_id)}
    if foreign:
        raise ApiError(400, "UPLOAD_NOT_YOURS", MESSAGE, foreign)
