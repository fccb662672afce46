"""Celery tasks of teams (thin: they call services)."""

from celery import shared_task

from .seats import team_grants_expire


@shared_task(name="teams.grants_expire", ignore_result=True)
def grants_expire() -> int:
    return team_grants_expire()
