"""The Celery application: settings from Django's ``CELERY_*`` namespace, tasks from every app."""

from celery import Celery
from celery.signals import worker_init

from adiuva import startup

startup.prepare()

app = Celery("adiuva")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _worker_warm(**_kwargs: object) -> None:
    # In the worker's main process, before its pool's processes are forked from it.
    startup.worker_warm()
