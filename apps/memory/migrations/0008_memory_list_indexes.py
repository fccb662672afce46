"""The core and pattern lists, newest first, by index: a page reads its own rows (and the count an
index-only scan) instead of reading and sorting every item of the user (associative memories and
episodes had theirs). Built concurrently, so a large table keeps taking writes meanwhile."""

from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY
    dependencies = [
        ("memory", "0007_associative_binary_first_pass"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="corememory",
            index=models.Index(fields=["user", "-created_at"], name="memory_core_user_created"),
        ),
        AddIndexConcurrently(
            model_name="proactivepattern",
            index=models.Index(fields=["user", "-created_at"], name="memory_pattern_user_created"),
        ),
    ]
