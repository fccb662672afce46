"""The Celery application: settings from Django's ``CELERY_*`` namespace, tasks from every app."""

from celery import Celery

from adiuva import startup

startup.prepare()

app = Celery("adiuva")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
