"""Register the nightly roll-up of model-call usage (django-celery-beat): daily totals, then pruning."""

from django.db import migrations

ROLL_UP_TASK = "billing: roll up and prune model-call usage"


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    nightly, _ = CrontabSchedule.objects.get_or_create(
        minute="23", hour="0", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.update_or_create(
        name=ROLL_UP_TASK,
        defaults={"task": "billing.llm_usage_roll_up", "crontab": nightly, "interval": None, "enabled": True},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=ROLL_UP_TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_llm_metering"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
