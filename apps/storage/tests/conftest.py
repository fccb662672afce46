"""Storage fixtures: paid users and their clients, a private blob directory, S3 on a loopback moto server."""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from rest_framework.test import APIClient

from apps.accounts.testing import client_for

S3_ACCESS_KEY = "testing-access-key"
S3_SECRET_KEY = "testing-secret-key"
S3_REGION = "us-east-1"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digit_flipped(hex_digest: str, index: int) -> str:
    return hex_digest[:index] + ("1" if hex_digest[index] == "0" else "0") + hex_digest[index + 1 :]


# A wrong checksum, from the farthest miss to the nearest: a comparison that looks at only part of
# the digest (a prefix, a suffix) still refuses the one-digit flips.
WRONG_CHECKSUMS = {
    "another-blob": lambda data: sha256_hex(data + b"\x00"),
    "first-digit-flipped": lambda data: _digit_flipped(sha256_hex(data), 0),
    "last-digit-flipped": lambda data: _digit_flipped(sha256_hex(data), 63),
}
each_wrong_checksum = pytest.mark.parametrize(
    "wrong_checksum", list(WRONG_CHECKSUMS.values()), ids=list(WRONG_CHECKSUMS)
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def pro_user(make_user):
    return make_user("pro@example.com", tier="pro")


@pytest.fixture
def pro_client(pro_user) -> APIClient:
    return client_for(pro_user)


@pytest.fixture
def other_client(make_user) -> APIClient:
    return client_for(make_user("mallory@example.com", tier="pro"))


@pytest.fixture(autouse=True)
def _blobs_per_test(blob_dir: Path) -> Path:
    """Every test of this app writes blobs under a directory of its own (the root ``blob_dir``)."""
    return blob_dir


def stored_files(location: Path) -> list[Path]:
    return [path for path in location.rglob("*") if path.is_file()] if location.exists() else []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 call otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(settings, moto_endpoint):
    """Point the ``blobs`` storage at a fresh bucket on the moto server; yields a boto3 client."""
    bucket = f"adiuva-test-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
    )
    client.create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "blobs": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": moto_endpoint,
                "region_name": S3_REGION,
                "access_key": S3_ACCESS_KEY,
                "secret_key": S3_SECRET_KEY,
                "default_acl": None,
                "file_overwrite": True,
                "object_parameters": {"ServerSideEncryption": "AES256"},
            },
        },
    }
    client.bucket = bucket
    return client


def s3_keys(client) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=client.bucket).get("Contents", [])]
