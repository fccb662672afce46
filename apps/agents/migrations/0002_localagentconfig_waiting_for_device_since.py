"""A local agent's owed run while its device is offline (additive, nullable)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("agents", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="localagentconfig",
            name="waiting_for_device_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
