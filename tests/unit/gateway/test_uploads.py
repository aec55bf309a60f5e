"""Image uploads: recognised by content, size- and pixel-limited, re-encoded without metadata."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.storage import LocalMediaStorage, S3MediaStorage, StorageUnavailable
from gateway.uploads import UploadNames
from services.common import formats
from tests.fixtures.fake_services import FakeServices

UPLOADS = "/api/v1/uploads"


class MemoryStorage:
    def __init__(self) -> None:
        self.saved: list[tuple[str, str, bytes]] = []  # (folder, extension, data)

    def save(self, data: bytes, *, name: str) -> str:
        folder, extension = name.split("/")[0], name.rsplit(".", 1)[-1]
        self.saved.append((folder, extension, data))
        return f"/media/{name}"

    def location(self, name: str) -> str | None:
        return None


@pytest.fixture
def storage(app: Flask) -> MemoryStorage:
    app.extensions["media_storage"] = MemoryStorage()
    return app.extensions["media_storage"]


def image_bytes(size: tuple[int, int] = (64, 48), fmt: str = "PNG", mode: str = "RGB", **save: object) -> bytes:
    output = io.BytesIO()
    Image.new(mode, size, 255 if mode == "1" else (200, 30, 30)).save(output, fmt, **save)
    return output.getvalue()


def post(client: FlaskClient, headers: dict[str, str], data: bytes, name: str = "photo.jpg"):  # type: ignore[no-untyped-def]
    return client.post(UPLOADS, data={"file": (io.BytesIO(data), name)}, headers=headers,
                       content_type="multipart/form-data")


def error_of(response) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    return response.status_code, response.get_json()["error"]["code"]


def test_a_png_is_stored_and_its_size_answered(client: FlaskClient, storage: MemoryStorage,
                                               bearer: Callable[..., dict[str, str]]) -> None:
    response = post(client, bearer(), image_bytes(), name="whatever.gif")

    [(folder, extension, data)] = storage.saved
    answer = response.get_json()
    url = answer.pop("url")
    assert (response.status_code, answer) == (201, {"width": 64, "height": 48})
    assert formats.SIGNED_UPLOAD_URL_PATTERN.fullmatch(url), url
    assert (folder, extension, Image.open(io.BytesIO(data)).format) == ("uploads", "png", "PNG")


def test_a_jpeg_loses_its_exif_metadata(client: FlaskClient, storage: MemoryStorage,
                                        bearer: Callable[..., dict[str, str]]) -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # camera make; GPS tags would travel the same way
    response = post(client, bearer(), image_bytes(fmt="JPEG", exif=exif.tobytes()))

    stored = Image.open(io.BytesIO(storage.saved[0][2]))
    assert (response.status_code, stored.format, dict(stored.getexif())) == (201, "JPEG", {})


def test_a_php_script_renamed_jpg_is_refused(client: FlaskClient, storage: MemoryStorage,
                                             bearer: Callable[..., dict[str, str]]) -> None:
    response = post(client, bearer(), b"<?php system($_GET['c']); ?>", name="shell.jpg")

    assert (error_of(response), storage.saved) == ((400, "UPLOAD_NOT_IMAGE"), [])


def test_a_truncated_image_is_refused(client: FlaskClient, storage: MemoryStorage,
                                      bearer: Callable[..., dict[str, str]]) -> None:
    response = post(client, bearer(), image_bytes(size=(300, 300), fmt="JPEG")[:600])

    assert (error_of(response), storage.saved) == ((400, "UPLOAD_NOT_IMAGE"), [])


def test_a_20_mb_file_is_refused(client: FlaskClient, storage: MemoryStorage,
                                 bearer: Callable[..., dict[str, str]]) -> None:
    response = post(client, bearer(), image_bytes() + b"\0" * (20 * 1024 * 1024))

    assert (response.status_code, storage.saved) == (413, [])


def test_a_decompression_bomb_is_refused_before_it_is_decoded(client: FlaskClient, storage: MemoryStorage,
                                                              bearer: Callable[..., dict[str, str]]) -> None:
    bomb = image_bytes(size=(8_000, 8_000), mode="1")  # 64 megapixels in a few kilobytes

    response = post(client, bearer(), bomb)

    assert (len(bomb) < 100_000, error_of(response), storage.saved) == (True, (400, "UPLOAD_TOO_MANY_PIXELS"), [])


def test_a_bomb_past_pillows_own_limit_is_refused_too(client: FlaskClient, storage: MemoryStorage,
                                                      bearer: Callable[..., dict[str, str]]) -> None:
    response = post(client, bearer(), image_bytes(size=(20_000, 20_000), mode="1"))

    assert (error_of(response), storage.saved) == ((400, "UPLOAD_TOO_MANY_PIXELS"), [])


def test_an_upload_without_a_file_field_is_a_400(client: FlaskClient, storage: MemoryStorage,
                                                 bearer: Callable[..., dict[str, str]]) -> None:
    response = client.post(UPLOADS, data={"other": "x"}, headers=bearer(), content_type="multipart/form-data")

    assert (error_of(response), response.get_json()["error"]["details"]) == ((400, "INVALID_REQUEST"),
                                                                             {"file": "required"})


def test_uploading_needs_a_login(client: FlaskClient, storage: MemoryStorage) -> None:
    response = post(client, {}, image_bytes())

    assert (error_of(response), storage.saved) == ((401, "AUTH_REQUIRED"), [])


@pytest.mark.parametrize("extension", ["jpg", "png", "webp"])
def test_the_local_store_answers_urls_a_review_accepts(tmp_path: Path, extension: str) -> None:
    url = LocalMediaStorage(tmp_path).save(b"x", name=UploadNames(b"k" * 32).new(42, extension))
    assert formats.SIGNED_UPLOAD_URL_PATTERN.fullmatch(url), url


def unwritable_directory(tmp_path: Path) -> Path:
    """A media directory that cannot be created (its parent is a file), as on a read-only root filesystem."""
    (tmp_path / "file").write_bytes(b"")
    return tmp_path / "file" / "media"


def test_the_local_store_reports_a_directory_it_cannot_write_as_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StorageUnavailable, match="could not store uploads/[0-9a-f]{32}-[0-9a-f]{32}.png in the media"):
        LocalMediaStorage(unwritable_directory(tmp_path)).save(b"x", name=UploadNames(b"k" * 32).new(42, "png"))


def test_an_upload_the_media_directory_cannot_take_is_a_503_in_the_error_format(
        app: Flask, client: FlaskClient, tmp_path: Path, bearer: Callable[..., dict[str, str]]) -> None:
    app.extensions["media_storage"] = LocalMediaStorage(unwritable_directory(tmp_path))

    response = post(client, bearer(), image_bytes())

    assert (response.status_code, response.get_json()["error"]["code"], response.get_json()["error"]["message"]) == (
        503, "STORAGE_UNAVAILABLE", "the image could not be stored; try again later")
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]


def test_the_object_store_redirects_only_to_upload_names_never_out_of_its_prefix() -> None:
    store = S3MediaStorage("minimall-media", "https://cdn.example.test", prefix="shop1", client=object())
    older, name = "uploads/" + "0f" * 16 + ".png", "uploads/" + "0f" * 16 + "-" + "a1" * 16 + ".png"

    assert [store.location(n) for n in (older, name, "uploads/../shop2/secret.json", "uploads/a/../../x.png")] == [
        f"https://cdn.example.test/shop1/{older}", f"https://cdn.example.test/shop1/{name}", None, None]


def test_two_files_in_one_upload_are_refused_and_nothing_is_stored(client: FlaskClient, storage: MemoryStorage,
                                                                  bearer: Callable[..., dict[str, str]]) -> None:
    # Found fuzzing by hand: the first was stored and answered, the second silently dropped.
    response = client.post(UPLOADS, data={"file": [(io.BytesIO(image_bytes()), "a.png"),
                                                   (io.BytesIO(image_bytes((8, 8))), "b.png")]},
                           headers=bearer(), content_type="multipart/form-data")

    assert (response.status_code, response.get_json()["error"]["details"], storage.saved) == (
        400, {"file": "given more than once"}, [])


def test_a_multi_picture_jpeg_from_a_phone_is_stored_as_its_first_picture(client: FlaskClient, storage: MemoryStorage,
                                                                         bearer: Callable[..., dict[str, str]]) -> None:
    # Found fuzzing by hand: a JPEG with more pictures (MPO, what many phone cameras write) is opened by Pillow as
    # format "MPO", which the upload did not know: 500 INTERNAL.
    pictures = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 30, 30)).save(pictures, "MPO", save_all=True,
                                                   append_images=[Image.new("RGB", (16, 12), (30, 200, 30))])

    response = post(client, bearer(), pictures.getvalue())

    [(_, extension, data)] = storage.saved
    stored = Image.open(io.BytesIO(data))
    assert (response.status_code, extension, stored.format, stored.size, getattr(stored, "n_frames", 1)) == (
        201, "jpg", "JPEG", (16, 12), 1)


def test_an_animated_webp_wider_than_webp_can_encode_is_refused_not_a_500(client: FlaskClient, storage: MemoryStorage,
                                                                         bearer: Callable[..., dict[str, str]]) -> None:
    # Found fuzzing uploads: an animated WebP's canvas may be up to 2**24 pixels wide and is decoded, but libwebp
    # encodes at most 16383: re-encoding it raised ValueError, answered 500 INTERNAL.
    frames = io.BytesIO()
    Image.new("RGB", (8, 8)).save(frames, "WEBP", save_all=True, append_images=[Image.new("RGB", (8, 8), (9, 9, 9))])
    data = bytearray(frames.getvalue())
    canvas = data.index(b"VP8X") + 12  # after the chunk's name, size, flags and reserved bytes: width - 1, 24 bits
    data[canvas:canvas + 3] = (20_000 - 1).to_bytes(3, "little")

    response = post(client, bearer(), bytes(data), name="wide.webp")

    assert (response.status_code, response.get_json()["error"]["code"], storage.saved) == (400, "UPLOAD_NOT_IMAGE", [])


@pytest.fixture
def media_client(settings: GatewaySettings, clients: FakeServices, tmp_path: Path) -> FlaskClient:
    """A gateway serving tmp_path as its media directory, with catalog/a.png in it."""
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "a.png").write_bytes(image_bytes())
    return create_app(replace(settings, environ={"MEDIA_DIR": str(tmp_path)}), clients).test_client()


@pytest.mark.parametrize(("condition", "status", "code"), [({"If-Match": '"not-its-etag"'}, 412, "PRECONDITION_FAILED"),
                                                           ({"Range": "bytes=999999-"}, 416, "RANGE_NOT_SATISFIABLE")])
def test_a_media_file_request_whose_condition_fails_is_answered_in_the_error_format(
        media_client: FlaskClient, condition: dict[str, str], status: int, code: str) -> None:
    # Found fuzzing by hand: the 412 carried the image itself (image/png), the 416 the code ERROR.
    response = media_client.get("/media/catalog/a.png", headers=condition)

    assert (response.status_code, response.get_json()["error"]["code"]) == (status, code)


def test_a_media_file_is_served_to_if_match_any_and_in_ranges(media_client: FlaskClient) -> None:
    whole = media_client.get("/media/catalog/a.png", headers={"If-Match": "*"})
    part = media_client.get("/media/catalog/a.png", headers={"Range": "bytes=0-3"})

    assert (whole.status_code, whole.data == image_bytes(), part.status_code, part.data) == (
        200, True, 206, image_bytes()[:4])


def test_the_101st_upload_of_one_shopper_in_a_day_is_refused_from_any_address_and_others_go_on(
        client: FlaskClient, storage: MemoryStorage, bearer: Callable[..., dict[str, str]]) -> None:
    png = image_bytes(size=(2, 2))

    def upload(user_id: int, n: int):  # type: ignore[no-untyped-def]
        return client.post(UPLOADS, data={"file": (io.BytesIO(png), "p.png")}, headers=bearer(user_id=user_id),
                           content_type="multipart/form-data",
                           environ_base={"REMOTE_ADDR": f"198.51.{n // 250}.{n % 250}"})

    mine = [upload(42, n).status_code for n in range(101)]
    theirs = upload(43, 0)

    assert (mine.count(201), mine[-1], theirs.status_code) == (100, 429, 201)
    assert len(storage.saved) == 101  # the refused one stored nothing


def test_many_shoppers_uploading_from_one_address_stop_at_its_daily_cap(
        settings: GatewaySettings, clients: FakeServices, bearer: Callable[..., dict[str, str]],
        frozen_clock) -> None:  # type: ignore[no-untyped-def]
    app = create_app(replace(settings, rate_limit_scale=0.1), clients)  # a tenth: 3 a minute, 30 a day per address
    app.extensions["media_storage"] = MemoryStorage()
    client, png = app.test_client(), image_bytes(size=(2, 2))
    statuses = []
    for minute in range(15):  # 3 a minute, under the per-minute limit, each from another shopper
        frozen_clock.now += 60
        statuses += [post(client, bearer(user_id=1000 + minute * 3 + n), png).status_code for n in range(3)]

    assert (statuses.count(201), statuses[-1]) == (30, 429)


def test_an_ipv6_site_is_capped_a_day_however_many_slash_64s_it_uses(
        settings: GatewaySettings, clients: FakeServices, bearer: Callable[..., dict[str, str]],
        frozen_clock) -> None:  # type: ignore[no-untyped-def]
    app = create_app(replace(settings, rate_limit_scale=0.1), clients)  # a tenth: 15 a minute, 150 a day per /48
    app.extensions["media_storage"] = MemoryStorage()
    client, png = app.test_client(), image_bytes(size=(2, 2))
    statuses = []
    for minute in range(12):
        frozen_clock.now += 60
        statuses += [client.post(UPLOADS, data={"file": (io.BytesIO(png), "p.png")}, content_type="multipart/form-data",
                                 headers=bearer(user_id=minute * 100 + n),
                                 environ_base={"REMOTE_ADDR": f"2001:db8:0:{minute * 100 + n:x}::1"}).status_code
                     for n in range(15)]
    other_site = client.post(UPLOADS, data={"file": (io.BytesIO(png), "p.png")}, content_type="multipart/form-data",
                             headers=bearer(user_id=9999), environ_base={"REMOTE_ADDR": "2001:db8:1::1"})

    assert (statuses.count(201), statuses[-1], other_site.status_code) == (150, 429, 201)
