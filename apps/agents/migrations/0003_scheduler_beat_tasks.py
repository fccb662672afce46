"""Register the agents' two Celery beat tasks (django-celery-beat): the dispatch tick and the sweeper.

One periodic task dispatches every user's schedule (claiming due configs by ``next_run_at``);
there is deliberately no PeriodicTask per agent config.
"""

from django.db import migrations

DISPATCH_TASK = "agents: dispatch due runs"
SWEEP_TASK = "agents: sweep runs whose lease expired"
DISPATCH_EVERY_SECONDS = 10


def create_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_tick, _ = IntervalSchedule.objects.get_or_create(every=DISPATCH_EVERY_SECONDS, period="seconds")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    # A tick that waited in the queue longer than a few intervals is dropped: a fresher one follows.
    PeriodicTask.objects.update_or_create(
        name=DISPATCH_TASK,
        defaults={
            "task": "agents.dispatch_due",
            "interval": every_tick,
            "enabled": True,
            "expire_seconds": 3 * DISPATCH_EVERY_SECONDS,
        },
    )
    PeriodicTask.objects.update_or_create(
        name=SWEEP_TASK,
        defaults={"task": "agents.sweep_stale_runs", "interval": every_minute, "enabled": True, "expire_seconds": 120},
    )


def delete_schedules(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=[DISPATCH_TASK, SWEEP_TASK]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0002_localagentconfig_waiting_for_device_since"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, delete_schedules)]
