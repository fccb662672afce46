"""Register the daily Beat task that withdraws staff seat grants past their last day."""

from django.db import migrations

GRANTS_TASK = "teams: withdraw expired seat grants"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    # Hourly, so a grant ends within the hour after its last day (in the server's time zone).
    PeriodicTask.objects.update_or_create(
        name=GRANTS_TASK,
        defaults={"task": "teams.grants_expire", "interval": hourly, "enabled": True, "expire_seconds": 1800},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=GRANTS_TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("teams", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
