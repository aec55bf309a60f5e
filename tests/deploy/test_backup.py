"""The prod backup CronJob's two steps run here as they would there: its `dump` script (this machine's pg_dump against
the local PostgreSQL, the databases named by SQLAlchemy URLs as in minimall-database) and its `upload` command (into
moto's S3 server), then a dump taken back out of the bucket is restored with pg_restore."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import create_engine, text

from services.common.config import SERVICES
from tests.deploy.helpers import K8S, ROOT, kustomize, require_tool

PG = "postgres@127.0.0.1:5432"
BUCKET = "minimall-backups"


@pytest.fixture(scope="module")
def backup_pod() -> dict[str, Any]:
    cron = next(o for o in kustomize(K8S / "overlays" / "prod") if o["kind"] == "CronJob")
    return cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]


@pytest.fixture
def databases() -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database per service holding one row that names it: service -> SQLAlchemy URL."""
    require_tool("pg_dump")  # with psql, beside the PostgreSQL the tests use
    names = {service: f"backup_{service}_{uuid.uuid4().hex[:8]}" for service in SERVICES}
    admin = create_engine(f"postgresql+psycopg://{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names.values():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    urls = {service: f"postgresql+psycopg://{PG}/{name}?sslmode=disable" for service, name in names.items()}
    for service, url in urls.items():
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE wallet_ledger (id int PRIMARY KEY, note text)"))
            conn.execute(text("INSERT INTO wallet_ledger VALUES (1, :note)"), {"note": service})
        engine.dispose()
    try:
        yield urls
    finally:
        with admin.connect() as conn:
            for name in [*names.values(), *(f"{n}_restored" for n in names.values())]:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_dump(pod: dict[str, Any], urls: dict[str, str], directory: Path,
             path: str | None = None) -> subprocess.CompletedProcess[str]:
    [dump] = pod["initContainers"]
    environ = {e["name"]: e["value"] for e in dump["env"] if "value" in e}
    environ |= {e["name"]: urls[e["valueFrom"]["secretKeyRef"]["key"]] for e in dump["env"] if "valueFrom" in e}
    script = dump["args"][0].replace("/backup/", f"{directory}/")
    return subprocess.run([*dump["command"], script], env={**environ, "PATH": path or os.environ["PATH"]},
                          capture_output=True, text=True, timeout=120)


def test_the_password_reaches_pg_dump_in_its_environment_never_on_its_command_line(
        backup_pod: dict[str, Any], databases: dict[str, str], tmp_path: Path) -> None:
    """`ps` shows a process's arguments to the whole node; a pg_dump in front of the real one records what it got
    (the local server trusts, so the password is not checked, only where it travels)."""
    shims, log = tmp_path / "bin", tmp_path / "pg_dump.log"
    shims.mkdir()
    (shims / "pg_dump").write_text(f'#!/bin/sh\nprintf \'%s|%s\\n\' "$*" "${{PGPASSWORD-unset}}" >> {log}\n'
                                   f'exec {shutil.which("pg_dump")} "$@"\n')
    (shims / "pg_dump").chmod(0o755)
    urls = {**{service: url for service, url in databases.items()},
            "member": databases["member"].replace("postgres@", "postgres:p%40ss%3Aw0rd@")}

    dumped = run_dump(backup_pod, urls, tmp_path / "dumps", path=f"{shims}:{os.environ['PATH']}")

    calls = dict(line.split("|") for line in log.read_text().splitlines())
    member_call = next(args for args in calls if "backup_member_" in args)
    assert dumped.returncode == 0, dumped.stderr
    assert ("p%40ss" in member_call, "p@ss" in member_call, calls[member_call]) == (False, False, "p@ss:w0rd")
    assert sorted(calls.values()) == sorted(["unset"] * (len(SERVICES) - 1) + ["p@ss:w0rd"])


def run_upload(pod: dict[str, Any], directory: Path, endpoint: str) -> subprocess.CompletedProcess[str]:
    [upload] = pod["containers"]
    assert upload["command"][:3] == ["python", "-m", "services.common.backups"]
    environ = {"BACKUP_S3_BUCKET": BUCKET, "BACKUP_S3_REGION": "us-east-1", "BACKUP_S3_ENDPOINT_URL": endpoint,
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    assert {e["name"] for e in upload["env"]} == set(environ)
    return subprocess.run([sys.executable, *upload["command"][1:-1], str(directory)], cwd=ROOT,
                          env={**os.environ, **environ}, capture_output=True, text=True, timeout=120)


def bucket(endpoint: str) -> Any:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    return s3


def test_each_database_goes_to_the_bucket_as_a_dump_pg_restore_brings_back(
        backup_pod: dict[str, Any], databases: dict[str, str], s3_endpoint: str, tmp_path: Path) -> None:
    s3 = bucket(s3_endpoint)

    dumped = run_dump(backup_pod, databases, tmp_path)
    uploaded = run_upload(backup_pod, tmp_path, s3_endpoint)

    assert (dumped.returncode, uploaded.returncode) == (0, 0), dumped.stderr + uploaded.stderr
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert [re.sub(r"/\d{8}T\d{6}Z\.dump$", "", key) for key in keys] == sorted(f"backups/{s}" for s in SERVICES)
    member_key = next(key for key in keys if key.startswith("backups/member/"))
    s3.download_file(BUCKET, member_key, str(tmp_path / "member.dump"))
    restored = databases["member"].split("/")[-1].split("?")[0] + "_restored"
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", restored], check=True, timeout=60)
    subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "-h", "127.0.0.1", "-U", "postgres", "-d", restored,
                    str(tmp_path / "member.dump")], check=True, timeout=60)
    engine = create_engine(f"postgresql+psycopg://{PG}/{restored}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, note FROM wallet_ledger")).all() == [(1, "member")]
    engine.dispose()


def test_a_failed_dump_leaves_that_database_out_uploads_the_others_and_fails_the_job(
        backup_pod: dict[str, Any], databases: dict[str, str], s3_endpoint: str, tmp_path: Path) -> None:
    """The night's other dumps still reach the bucket; the Job fails, so the backup alert sees no new success."""
    s3 = bucket(s3_endpoint)
    urls = {**databases, "order": databases["order"].replace("/backup_order_", "/no_such_database_")}

    dumped = run_dump(backup_pod, urls, tmp_path)
    uploaded = run_upload(backup_pod, tmp_path, s3_endpoint)

    assert dumped.returncode == 0 and "FAILED to dump order" in dumped.stderr
    assert list((tmp_path / "order").iterdir()) == []
    assert uploaded.returncode == 1 and "no dump of order" in uploaded.stderr
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert sorted(key.split("/")[1] for key in keys) == sorted(s for s in SERVICES if s != "order")
