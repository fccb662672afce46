"""The records list of all tables, newest first, by index: a page reads its own rows (and the count
an index-only scan) instead of reading and sorting every record of the user. Built concurrently,
so a large table keeps taking writes meanwhile."""

from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY
    dependencies = [
        ("storage", "0004_backup_chunk_count"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="storagerecord",
            index=models.Index(fields=["user", "-created_at"], name="storage_rec_user_created_idx"),
        ),
    ]
