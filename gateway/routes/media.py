"""Media: image uploads (checked by content with Pillow) and the files of the local media directory."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

from flask import Blueprint, Response, current_app, g, redirect, request, send_from_directory
from PIL import Image, UnidentifiedImageError
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from gateway.api import Reply, conditional, operation
from gateway.errors import ApiError
from gateway.ratelimit import DAY, Limit
from gateway.storage import LocalMediaStorage, MediaStorage, StorageUnavailable
from gateway.uploads import UploadNames
from services.common.config import Env, var_dir

bp = Blueprint("media", __name__)
log = logging.getLogger(__name__)

UPLOAD_MAX_BYTES = 5 * 1024 * 1024
UPLOAD_MAX_PIXELS = 40_000_000          # about 7,000 x 6,000: more is a decompression bomb, not a photo
FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"), "WEBP": ("webp", "image/webp")}


class Uploaded(Reply):
    """The stored image."""

    url: str
    width: int
    height: int


def media_dir() -> Path:
    """MEDIA_DIR, default $MINIMALL_VAR/media (var/media): the product seed writes its images there."""
    env = Env(current_app.extensions["settings"].environ)
    return Path(env.str("MEDIA_DIR", "") or var_dir(env) / "media").resolve()


def storage() -> MediaStorage:
    return current_app.extensions.get("media_storage") or LocalMediaStorage(media_dir())


@bp.get("/media/<path:name>")
def media(name: str) -> Response:
    """An image: from the media directory, or a redirect to where the object store serves it (its CDN)."""
    target = storage().location(name)
    if target is not None:
        response = redirect(target, code=302)  # not 301: the CDN's address may change, the path stays
        response.cache_control.public = True
        response.cache_control.max_age = 86_400
        return response
    file = send_from_directory(media_dir(), name, max_age=86_400, conditional=False)  # names: random or content hashes
    try:
        return conditional(file, accept_ranges=True, complete_length=file.content_length)
    except RequestedRangeNotSatisfiable:  # 416 in the error format (errors.py); the file opened is closed first
        file.close()
        raise


# 30 a minute from one address, and 100 a day per uploader from anywhere (a review or an after-sales case takes up to
# 9): one account can no longer fill the image store from many addresses. Per address also 300 a day, so many
# accounts cannot fill it from one address either (5 MB each: at most 1.5 GB a day per address; a carrier NAT address
# shared by many shoppers still uploads the images of 33 full reviews a day), and an IPv6 site (a /48: 65,536 /64
# "addresses") five addresses' worth, a minute and a day.
UPLOAD_LIMITS = (Limit("ip", 30, 60), Limit("ipv6_48", 150, 60), Limit("user", 100, DAY), Limit("ip", 300, DAY),
                 Limit("ipv6_48", 1500, DAY))


@bp.post("/api/v1/uploads")
@operation(summary="Upload an image (multipart field \"file\")", tag="media", limits=UPLOAD_LIMITS,
           description="JPEG, PNG or WebP up to 5 MB and 40 megapixels, recognised by content (not by name); "
                       "re-encoded without metadata (EXIF location) and stored under a random name signed for the "
                       "uploader: only they can name it in a review or an after-sales case (anyone else, 400 "
                       "UPLOAD_NOT_YOURS). 503 "
                       "STORAGE_UNAVAILABLE when the image store cannot be written (nothing stored; try again).",
           responses={201: Uploaded}, files=("file",))
def upload() -> tuple[Uploaded, int]:
    request.max_content_length = UPLOAD_MAX_BYTES + 64 * 1024  # the multipart envelope around the file
    files = request.files.getlist("file")
    if not files:
        raise ApiError(400, "INVALID_REQUEST", "send the image as multipart/form-data field \"file\"",
                       {"file": "required"})
    if len(files) > 1:  # one image per upload: never store one of them and silently drop the others
        raise ApiError(400, "INVALID_REQUEST", "send one image per upload", {"file": "given more than once"})
    file = files[0]
    data = file.stream.read(UPLOAD_MAX_BYTES + 1)
    if len(data) > UPLOAD_MAX_BYTES:
        raise ApiError(413, "UPLOAD_TOO_LARGE", "the image must be at most 5 MB", {"file": "too large"})
    image, image_format = _decode(data)
    output = io.BytesIO()
    try:
        image.save(output, format=image_format)
    except (OSError, ValueError):  # decodable but not encodable: an animated WebP's canvas wider than libwebp encodes
        raise ApiError(400, "UPLOAD_NOT_IMAGE", "the image cannot be stored as a JPEG, PNG or WebP image",
                       {"file": "not storable"}) from None
    try:
        names: UploadNames = current_app.extensions["upload_names"]
        url = storage().save(output.getvalue(), name=names.new(g.caller.user_id, FORMATS[image_format][0]))
    except StorageUnavailable:
        log.warning("upload not stored", exc_info=True)
        raise ApiError(503, "STORAGE_UNAVAILABLE", "the image could not be stored; try again later") from None
    return Uploaded(url=url, width=image.width, height=image.height), 201


def _decode(data: bytes) -> tuple[Image.Image, str]:
    """The fully decoded image and its format; 400 for anything that is not a sane JPEG/PNG/WebP."""
    not_image = ApiError(400, "UPLOAD_NOT_IMAGE", "the file is not a JPEG, PNG or WebP image", {"file": "not an image"})
    too_many_pixels = ApiError(400, "UPLOAD_TOO_MANY_PIXELS", "the image has too many pixels",
                               {"file": "too many pixels"})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=list(FORMATS))
            if opened.width * opened.height > UPLOAD_MAX_PIXELS:  # checked on the header, before decoding
                raise too_many_pixels
            opened.load()  # decodes everything: truncated or corrupt files fail here, not later
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_many_pixels from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise not_image from None
    # A JPEG holding more pictures (MPO: what many phone cameras write) is opened as "MPO": it is a JPEG, and its
    # first picture, the photo itself, is what is kept.
    image_format = "JPEG" if opened.format == "MPO" else opened.format or ""
    if image_format == "JPEG" and opened.mode not in ("RGB", "L"):
        return opened.convert("RGB"), image_format  # CMYK and friends: re-encode as plain RGB
    return opened, image_format
