"""Where uploaded media goes: a storage interface, the local-directory store (`make run`, the default) and
an S3-compatible object store (AWS S3, Aliyun OSS, Tencent COS, MinIO...) for production.

`MEDIA_STORAGE=s3` chooses the object store: `MEDIA_S3_BUCKET` and `MEDIA_PUBLIC_URL` (where the
bucket's objects are served, usually a CDN) are required; an upload is still answered, and kept by reviews and
after-sales cases, as its gateway path /media/uploads/<name>, which redirects to the CDN; `MEDIA_S3_ENDPOINT_URL` (any S3-compatible
service), `MEDIA_S3_REGION` and `MEDIA_S3_PREFIX` are optional. Credentials come from boto3's usual
chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a web-identity token, an instance role), never
from this code or its settings.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Protocol

from services.common.config import ConfigError, Env
from services.common.formats import UPLOAD_URL_PATTERN

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


class StorageUnavailable(Exception):
    """The store could not take the file (the object store is down or refused us, the directory is not writable)."""


class MediaStorage(Protocol):
    def save(self, data: bytes, *, name: str) -> str:
        """Store `data` as `name` (uploads/<name>.<ext>, chosen by gateway/uploads.py, never by a client); the gateway
        path it is served at, /media/<name>, the same whatever the store (reviews and after-sales cases keep it:
        services.common.formats.UPLOAD_URL)."""

    def location(self, name: str) -> str | None:
        """Where the gateway sends a reader of /media/<name> (a 302); None: it serves the file itself."""


class LocalMediaStorage:
    """Files under `directory`, served by the gateway at /media/... (dev, and the default)."""

    def __init__(self, directory: Path, url_prefix: str = "/media") -> None:
        self.directory = directory
        self.url_prefix = url_prefix

    def save(self, data: bytes, *, name: str) -> str:
        target = self.directory / name
        partial = target.with_suffix(".part")
        try:  # a read-only or full filesystem, a directory that is a file: the store is unavailable, not a bug
            target.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(data)
            os.replace(partial, target)  # readers never see half a file
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)  # what a full disk left half written
            raise StorageUnavailable(f"could not store {name} in the media directory: {exc.strerror}") from exc
        return f"{self.url_prefix}/{name}"

    def location(self, name: str) -> str | None:
        return None


class S3MediaStorage:
    """Objects in an S3-compatible bucket, served from `public_url` (the bucket's CDN or website address)."""

    def __init__(self, bucket: str, public_url: str, *, prefix: str = "", client: Any = None,
                 endpoint_url: str | None = None, region: str | None = None) -> None:
        import boto3  # loaded only when the object store is configured
        from botocore.config import Config

        self.bucket = bucket
        self.public_url = public_url.rstrip("/")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region,
            config=Config(signature_version="s3v4", connect_timeout=3, read_timeout=10,
                          retries={"max_attempts": 3, "mode": "standard"}))

    def save(self, data: bytes, *, name: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        key, extension = self.prefix + name, name.rsplit(".", 1)[-1]
        try:  # one PUT: the object appears whole or not at all
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=CONTENT_TYPES[extension],
                                   CacheControl="public, max-age=31536000, immutable")  # names are never reused
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"could not store {key} in bucket {self.bucket}") from exc
        return f"/media/{name}"

    def location(self, name: str) -> str | None:
        """The object's address at the bucket's public URL (the CDN), for the uploads this store keeps: only a name
        an upload has (uploads/<32 hex>[-<32 hex>].<ext>), so uploads/../ never points the redirect out of the prefix."""
        return f"{self.public_url}/{self.prefix}{name}" if UPLOAD_URL_PATTERN.fullmatch(f"/media/{name}") else None


def object_storage(env: Env) -> S3MediaStorage | None:
    """The object store MEDIA_STORAGE=s3 configures; None for the local directory (the default)."""
    kind = env.str("MEDIA_STORAGE", "local")
    if kind == "local":
        return None
    if kind != "s3":
        raise ConfigError(f"MEDIA_STORAGE must be local or s3, got {kind!r}")
    bucket, public_url = env.optional("MEDIA_S3_BUCKET"), env.optional("MEDIA_PUBLIC_URL")
    if not bucket or not public_url:
        raise ConfigError("MEDIA_STORAGE=s3 needs MEDIA_S3_BUCKET and MEDIA_PUBLIC_URL (where its objects are served)")
    return S3MediaStorage(bucket, public_url, prefix=env.str("MEDIA_S3_PREFIX", ""),
                          endpoint_url=env.optional("MEDIA_S3_ENDPOINT_URL"), region=env.optional("MEDIA_S3_REGION"))
