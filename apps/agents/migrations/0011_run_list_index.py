"""The list of all of a user's runs, newest first, by index: a page reads its own rows instead of
sorting every run of the user. Built concurrently, so a large table keeps taking writes meanwhile."""

from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY
    dependencies = [
        ("agents", "0010_run_tallies"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="agentrunlog",
            index=models.Index(fields=["user", "-started_at"], name="agents_run_user_started_idx"),
        ),
    ]
