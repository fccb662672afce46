"""Tallies of each user's records (per table) and vector items, kept by PostgreSQL's triggers
(``apps.core.tallies``): the records list's count and the storage quota's sum read one row per
table instead of scanning every record, so they stop growing with the user's size. Filled from
the rows already there in the same transaction that makes the triggers."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from apps.core.tallies import Tally, tally_triggers


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_user_time_zone"),
        ("storage", "0005_record_list_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="VectorTally",
            fields=[
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("items", models.BigIntegerField(default=0)),
                ("bytes", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="RecordTally",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("table", models.CharField(max_length=64)),
                ("records", models.BigIntegerField(default=0)),
                ("bytes", models.BigIntegerField(default=0)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("user", "table"), name="storage_record_tally_unique")],
            },
        ),
        tally_triggers(
            Tally(
                source="storage_storagerecord",
                tally="storage_recordtally",
                keys=("user_id", "table"),
                sums={"records": "1", "bytes": "size_bytes"},
            )
        ),
        tally_triggers(
            Tally(
                source="storage_vectoritem",
                tally="storage_vectortally",
                keys=("user_id",),
                sums={"items": "1", "bytes": "size_bytes"},
            )
        ),
    ]
