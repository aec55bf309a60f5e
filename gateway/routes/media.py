"""Media files (catalogue images) from a local directory: the dev stand-in for object storage or a CDN."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, send_from_directory

from services.common.config import Env

bp = Blueprint("media", __name__)


def media_dir() -> Path:
    """MEDIA_DIR, default $MINIMALL_VAR/media (var/media): the product seed writes its images there."""
    env = Env(current_app.extensions["settings"].environ)
    return Path(env.str("MEDIA_DIR", "") or Path(env.str("MINIMALL_VAR", "var")) / "media").resolve()


@bp.get("/media/<path:name>")
def media(name: str) -> Response:
    return send_from_directory(media_dir(), name, max_age=86_400)  # names are content hashes: cache a day
