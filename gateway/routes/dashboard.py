"""The admin dashboard: a static page (HTML, CSS, vanilla JS drawing SVG charts) that calls the admin API.

Nothing is fetched from elsewhere at run time; the page logs staff in through /api/v1/auth/login/password
and keeps the tokens in the tab's sessionStorage. The API, not the page, decides who may read what.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, redirect, send_from_directory

bp = Blueprint("dashboard", __name__)

STATIC = Path(__file__).resolve().parent.parent / "static" / "admin"
# Only the page's own files: no inline script or style, no other origin, never inside a frame.
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
          "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@bp.get("/admin")
def dashboard_root() -> Response:
    return redirect("/admin/", code=301)  # type: ignore[return-value]


@bp.get("/admin/")
def dashboard() -> Response:
    return _file("index.html")


@bp.get("/admin/<path:name>")
def dashboard_file(name: str) -> Response:
    return _file(name)


def _file(name: str) -> Response:
    response = send_from_directory(STATIC, name, max_age=0)  # a new release shows at once
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
