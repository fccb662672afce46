"""Files: uploaded media, the encrypted blob storage (filesystem or S3), backups and record sizes."""

from __future__ import annotations

from pathlib import Path

from boto3.s3.transfer import TransferConfig

from .environment import BASE_DIR, env

# STORAGE (django-storages: S3 when a bucket is configured, else the filesystem under MEDIA_ROOT)
# ------------------------------------------------------------------------------
MEDIA_ROOT = env("MEDIA_ROOT", default=str(BASE_DIR / ".data" / "media"))
MEDIA_URL = "/media/"
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", default="")
AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL", default="") or None
AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME", default="") or None
AWS_ACCESS_KEY_ID = env("AWS_ACCESS_KEY_ID", default="") or None  # unset: boto3's default credential chain
AWS_SECRET_ACCESS_KEY = env("AWS_SECRET_ACCESS_KEY", default="") or None
AWS_QUERYSTRING_EXPIRE = env.int("AWS_QUERYSTRING_EXPIRE", default=3600)


def bounded_transfer_config() -> TransferConfig:
    """boto3 buffers a streamed (non-seekable) upload's parts in memory: 4 x 8 MiB, not 10."""
    config = TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=4)
    config.max_in_memory_upload_chunks = 4
    return config


def blob_storage_config(*, bucket: str, location: str) -> dict:
    """The ``blobs`` storage: client ciphertext only, never served from MEDIA_URL."""
    if not bucket:
        return {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": location}}
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": AWS_S3_ENDPOINT_URL,
            "region_name": AWS_S3_REGION_NAME,
            "access_key": AWS_ACCESS_KEY_ID,
            "secret_key": AWS_SECRET_ACCESS_KEY,
            "querystring_expire": AWS_QUERYSTRING_EXPIRE,
            "default_acl": None,
            "file_overwrite": True,  # every key is a fresh UUID; skips a HEAD per write
            "object_parameters": {"ServerSideEncryption": "AES256"},
            "transfer_config": bounded_transfer_config(),
        },
    }


STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "blobs": blob_storage_config(bucket=AWS_STORAGE_BUCKET_NAME, location=str(Path(MEDIA_ROOT) / "blobs")),
}
# Largest record / vector blob (decoded bytes) accepted in one JSON request.
STORAGE_RECORD_MAX_BYTES = env.int("STORAGE_RECORD_MAX_BYTES", default=8 * 1024 * 1024)
# On S3, backups at least this large are downloaded through a presigned URL instead of the app.
BACKUP_PRESIGNED_DOWNLOAD_MIN_BYTES = env.int("BACKUP_PRESIGNED_DOWNLOAD_MIN_BYTES", default=8 * 1024 * 1024)
# Presigned multipart uploads not completed within this many hours are aborted (Celery beat).
BACKUP_MULTIPART_STALE_HOURS = env.int("BACKUP_MULTIPART_STALE_HOURS", default=24)
