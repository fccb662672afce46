"""The rows the migrations seed come back after any flush (apps.core.testing.seed_data)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.sites.models import Site
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from apps.core.testing.seed_data import SeedData
from apps.marketplace.reviewers import GROUP_NAME

pytestmark = pytest.mark.django_db(transaction=True)


def _seeded() -> dict[str, object]:
    return {
        "content types": ContentType.objects.count(),
        "permissions": Permission.objects.count(),
        "groups": sorted(Group.objects.values_list("name", flat=True)),
        "reviewers' permissions": Group.objects.get(name=GROUP_NAME).permissions.count(),
        "sites": list(Site.objects.values_list("domain", flat=True)),
        "beat tasks": sorted(PeriodicTask.objects.values_list("name", "task", "enabled")),
        "crontabs": CrontabSchedule.objects.count(),
        "intervals": sorted(IntervalSchedule.objects.values_list("every", "period")),
    }


@pytest.mark.parametrize("post_migrate", [True, False], ids=["full flush", "flush without post_migrate"])
def test_a_flush_loses_no_seeded_row_once_restored(post_migrate):
    # given the migrated database's seeded rows, beat tasks among them
    seed = SeedData.capture()
    before = _seeded()
    assert before["beat tasks"]
    assert before["sites"]
    assert GROUP_NAME in before["groups"]

    # when everything is flushed, as a transactional test ends (a full flush sends post_migrate, the
    # socket tests' flush of a few apps does not) and the seed is put back
    call_command("flush", interactive=False, verbosity=0, inhibit_post_migrate=not post_migrate)
    assert not PeriodicTask.objects.exists()
    seed.restore()

    # then every seeded row is there again, and new rows get ids of their own (the flush command
    # restarts the sequences, which the restored ids must not meet again)
    assert _seeded() == before
    every_day = CrontabSchedule.objects.create(minute="7", hour="7")
    hourly = IntervalSchedule.objects.create(every=7, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.create(name="a test's own", task="tests.noop", interval=hourly)
    assert every_day.pk > max(CrontabSchedule.objects.exclude(pk=every_day.pk).values_list("pk", flat=True))


def test_restoring_what_is_there_changes_nothing():
    seed = SeedData.capture()
    before = _seeded()
    ids = sorted(PeriodicTask.objects.values_list("pk", flat=True))

    seed.restore()

    assert _seeded() == before
    assert sorted(PeriodicTask.objects.values_list("pk", flat=True)) == ids


# The next two run in this order (pytest-django keeps a file's transactional tests in their order, and
# pytest-xdist gives a file to one worker): the first leaves the database without its seeded rows, the
# second must find them.


def test_a_transactional_test_may_leave_the_seeded_rows_gone():
    PeriodicTask.objects.all().delete()
    Group.objects.filter(name=GROUP_NAME).delete()
    Site.objects.all().delete()

    assert not PeriodicTask.objects.exists()  # the premise the next test's assertions stand on
    assert not Group.objects.filter(name=GROUP_NAME).exists()
    assert not Site.objects.exists()


def test_the_next_test_finds_them_again():
    assert PeriodicTask.objects.filter(task="billing.llm_usage_roll_up", enabled=True).exists()
    assert Group.objects.get(name=GROUP_NAME).permissions.exists()
    assert Site.objects.exists()
