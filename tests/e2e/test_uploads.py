"""Uploads through gunicorn and the gateway: an image is stored and served back; a disguised script is not."""

from __future__ import annotations

import io

import pytest
import requests
from PIL import Image

from tests.fixtures.platform import Platform

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shopper(platform: Platform) -> dict[str, str]:
    phone = "13700004321"
    sent = requests.post(f"{platform.api}/auth/sms-codes", json={"phone": phone, "purpose": "login"}, timeout=10)
    reply = requests.post(f"{platform.api}/auth/login/sms", json={"phone": phone, "code": sent.json()["dev_code"]},
                          timeout=10)
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def test_an_uploaded_photo_is_served_back_at_its_url(platform: Platform, shopper: dict[str, str]) -> None:
    photo = io.BytesIO()
    Image.new("RGB", (1600, 1200), (10, 120, 200)).save(photo, "JPEG", quality=95)

    uploaded = requests.post(f"{platform.api}/uploads", files={"file": ("IMG_0001.JPG", photo.getvalue())},
                             headers=shopper, timeout=30)
    served = requests.get(f"{platform.base_url}{uploaded.json()['url']}", timeout=10)

    assert (uploaded.status_code, uploaded.json()["width"], uploaded.json()["height"]) == (201, 1600, 1200)
    assert (served.status_code, served.headers["Content-Type"], Image.open(io.BytesIO(served.content)).size) == (
        200, "image/jpeg", (1600, 1200))


def test_a_script_named_like_a_photo_is_refused(platform: Platform, shopper: dict[str, str]) -> None:
    response = requests.post(f"{platform.api}/uploads", files={"file": ("cat.jpg", b"<?php phpinfo(); ?>")},
                             headers=shopper, timeout=10)

    assert (response.status_code, response.json()["error"]["code"]) == (400, "UPLOAD_NOT_IMAGE")


def test_a_20_mb_upload_is_refused(platform: Platform, shopper: dict[str, str]) -> None:
    response = requests.post(f"{platform.api}/uploads", files={"file": ("big.png", b"\0" * (20 * 1024 * 1024))},
                             headers=shopper, timeout=60)

    assert response.status_code == 413
