"""How many items of each kind a user has, kept by PostgreSQL's triggers (``apps.core.tallies``):
the memory list's count, the counts and the caps' checks read one row instead of counting the
kind's rows (~0.54 ms at the associative cap of 10,000). Filled from the rows already there in the
same transaction that makes the triggers."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from apps.core.tallies import Tally, tally_triggers

KINDS = (
    ("core", "memory_corememory"),
    ("associative", "memory_associativememory"),
    ("episodic", "memory_episode"),
    ("proactive", "memory_proactivepattern"),
)


class Migration(migrations.Migration):
    dependencies = [
        ("memory", "0008_memory_list_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="MemoryTally",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("core", "core"),
                            ("associative", "associative"),
                            ("episodic", "episodic"),
                            ("proactive", "proactive"),
                        ],
                        max_length=16,
                    ),
                ),
                ("items", models.BigIntegerField(default=0)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("user", "kind"), name="memory_tally_user_kind_unique")],
            },
        ),
        *(
            tally_triggers(
                Tally(
                    source=table,
                    tally="memory_memorytally",
                    keys=("user_id",),
                    sums={"items": "1"},
                    fixed={"kind": f"'{kind}'"},
                )
            )
            for kind, table in KINDS
        ),
    ]
