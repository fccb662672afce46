"""How many runs each agent of a user has had, kept by PostgreSQL's triggers (``apps.core.tallies``):
the runs list's ``X-Total-Count`` reads a row or a few instead of counting every run (they are
never pruned). Only inserts and deletes are tallied: a run's user and agent never change, and its
status, progress and lease are updated often. Filled from the runs already there in the same
transaction that makes the triggers."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from apps.core.tallies import Tally, tally_triggers


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0009_outbox_delivering_node"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AgentRunTally",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("agent_id", models.UUIDField()),
                ("runs", models.BigIntegerField(default=0)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("user", "agent_id"), name="agents_run_tally_unique")],
            },
        ),
        tally_triggers(
            Tally(source="agents_agentrunlog", tally="agents_agentruntally", keys=("user_id", "agent_id"), sums={"runs": "1"}),
            on_update=False,
        ),
    ]
