"""Register the daily outbox prune (django-celery-beat): delivered rows older than the retention go."""

from django.db import migrations

PRUNE_TASK = "agents: prune delivered outbox rows"


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    nightly, _ = CrontabSchedule.objects.get_or_create(
        minute="17", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.update_or_create(
        name=PRUNE_TASK,
        defaults={"task": "agents.prune_outbox", "crontab": nightly, "interval": None, "enabled": True},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=PRUNE_TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0003_scheduler_beat_tasks"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
