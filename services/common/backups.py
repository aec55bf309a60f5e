"""The nightly database backup's upload step: `python -m services.common.backups <directory>`.

deploy/k8s/overlays/prod/backup.yaml runs it after its `dump` init container (postgres:17's pg_dump) has written
`<directory>/<service>/<UTC timestamp>.dump`, one custom-format archive per service database; it puts each at
`s3://$BACKUP_S3_BUCKET/<BACKUP_S3_PREFIX>/<service>/<UTC timestamp>.dump` and exits 1 when any of the five is
missing (its dump failed, the dump step said why), after uploading the others, so the Job fails and the backup
alert sees no new success. `BACKUP_S3_REGION` and `BACKUP_S3_ENDPOINT_URL` (an S3-compatible service other than
AWS) are optional. Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a
web-identity token), never from this code or its settings. Restoring: deploy/k8s/README.md "Backups and restore".
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.config import SERVICES, ConfigError, Env

STAMP = re.compile(r"\d{8}T\d{6}Z")  # `date -u +%Y%m%dT%H%M%SZ`, as the dump step names its files


@dataclass(frozen=True)
class BackupTarget:
    """Where the dumps go: a bucket and the prefix of their keys."""

    bucket: str
    prefix: str = "backups"
    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def from_env(cls, env: Env) -> BackupTarget:
        return cls(bucket=env.str("BACKUP_S3_BUCKET"), prefix=env.str("BACKUP_S3_PREFIX", "backups").strip("/"),
                   endpoint_url=env.optional("BACKUP_S3_ENDPOINT_URL"), region=env.optional("BACKUP_S3_REGION"))

    def key(self, service: str, stamp: str) -> str:
        return f"{self.prefix}/{service}/{stamp}.dump"

    def client(self) -> Any:
        import boto3  # loaded only where a backup is uploaded
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                            config=Config(signature_version="s3v4", connect_timeout=10, read_timeout=120,
                                          retries={"max_attempts": 5, "mode": "standard"}))


def dumps_found(directory: Path) -> dict[str, Path]:
    """Each service's dump in `directory` (`<service>/<stamp>.dump`, not empty); a service with none is left out."""
    found = {}
    for service in SERVICES:
        files = [path for path in sorted((directory / service).glob("*.dump"))
                 if STAMP.fullmatch(path.stem) and path.stat().st_size > 0]
        if files:
            found[service] = files[-1]
    return found


def upload_dumps(directory: Path, target: BackupTarget, client: Any) -> tuple[list[str], list[str]]:
    """Upload every service's dump found in `directory`: the keys written and the services without a dump."""
    found = dumps_found(directory)
    written = []
    for service, path in found.items():
        key = target.key(service, path.stem)
        # upload_file: multipart above 8 MiB, so a dump of any size goes up in parts that are retried one by one
        client.upload_file(str(path), target.bucket, key)
        written.append(key)
    return written, [service for service in SERVICES if service not in found]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m services.common.backups <directory of <service>/<stamp>.dump>", file=sys.stderr)
        return 2
    try:
        target = BackupTarget.from_env(Env())
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    written, missing = upload_dumps(Path(argv[0]), target, target.client())
    for key in written:
        print(f"uploaded s3://{target.bucket}/{key}")
    if missing:
        print(f"no dump of {', '.join(missing)}: see the dump container's log", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
