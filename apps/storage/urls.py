"""Storage routes under /api/v1/: storage/records, storage/vectors, backup."""

from django.urls import path

from .apis.backups import BackupApi, BackupDeleteApi, BackupHistoryApi
from .apis.multipart import BackupMultipartCompleteApi, BackupMultipartInitiateApi, BackupMultipartPartsApi
from .apis.records import RecordDetailApi, RecordListCreateApi
from .apis.vectors import VectorDeleteApi, VectorSearchApi, VectorUpsertApi

urlpatterns = [
    path("storage/records", RecordListCreateApi.as_view(), name="storage-records"),
    path("storage/records/<uuid:record_id>", RecordDetailApi.as_view(), name="storage-record"),
    path("storage/vectors/upsert", VectorUpsertApi.as_view(), name="storage-vectors-upsert"),
    path("storage/vectors/search", VectorSearchApi.as_view(), name="storage-vectors-search"),
    path("storage/vectors", VectorDeleteApi.as_view(), name="storage-vectors"),
    path("backup", BackupApi.as_view(), name="backup"),
    path("backup/history", BackupHistoryApi.as_view(), name="backup-history"),
    path("backup/multipart", BackupMultipartInitiateApi.as_view(), name="backup-multipart"),
    path("backup/multipart/<uuid:backup_id>/parts", BackupMultipartPartsApi.as_view(), name="backup-multipart-parts"),
    path(
        "backup/multipart/<uuid:backup_id>/complete",
        BackupMultipartCompleteApi.as_view(),
        name="backup-multipart-complete",
    ),
    path("backup/<uuid:backup_id>", BackupDeleteApi.as_view(), name="backup-detail"),
]
