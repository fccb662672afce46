"""The rows the migrations seed, put back after a test that flushed them.

A transactional test ends by flushing the database. A full flush sends ``post_migrate``, which makes
the content types, the permissions, the site and the reviewers' group again, but not what a data
migration wrote: the Celery Beat tasks and their schedules. A flush limited to some apps (the socket
tests' ``available_apps``) sends nothing, and its cascade takes the content types, the permissions,
the groups and the site with it. A migration test that steps an app back and forth can leave either.

Which test ran before another is not fixed (pytest-xdist hands files to its workers as they free up),
so a test that reads seeded rows (the reviewers' group, the site of an allauth page, a beat task)
must find them whatever ran before it: after each transactional test, ``SeedData.restore`` sends
``post_migrate`` again when its rows are missing, and saves again the beat rows captured when the
test database was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

from django.apps import apps
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.contrib.sites.models import Site
from django.core import serializers
from django.core.management.color import no_style
from django.core.management.sql import emit_post_migrate_signal
from django.db import DEFAULT_DB_ALIAS, connection, transaction

_BEAT_MODELS = ("IntervalSchedule", "CrontabSchedule", "PeriodicTask")  # schedules before the tasks


@dataclass(frozen=True)
class SeedData:
    content_types: int
    groups: frozenset[str]
    beat_rows: str  # the beat models' rows, serialized
    beat_tasks: frozenset[str]

    @classmethod
    def capture(cls) -> SeedData:
        """What the migrated test database holds (call it before any test writes)."""
        beat = [apps.get_model("django_celery_beat", name) for name in _BEAT_MODELS]
        return cls(
            content_types=ContentType.objects.count(),
            groups=frozenset(Group.objects.values_list("name", flat=True)),
            beat_rows=serializers.serialize("json", chain.from_iterable(model.objects.all() for model in beat)),
            beat_tasks=frozenset(beat[-1].objects.values_list("name", flat=True)),
        )

    def restore(self) -> None:
        """Put back what a flush took; a no-op (three reads) when nothing is missing."""
        if (
            ContentType.objects.count() < self.content_types
            or not Site.objects.exists()
            or Group.objects.filter(name__in=self.groups).count() < len(self.groups)
        ):
            emit_post_migrate_signal(verbosity=0, interactive=False, db=DEFAULT_DB_ALIAS)
        task_model = apps.get_model("django_celery_beat", "PeriodicTask")
        present = set(task_model.objects.filter(name__in=self.beat_tasks).values_list("name", flat=True))
        if present == self.beat_tasks:
            return
        with transaction.atomic():
            for row in serializers.deserialize("json", self.beat_rows):
                obj = row.object
                if isinstance(obj, task_model):
                    if obj.name not in present:
                        row.save()
                elif not type(obj)._default_manager.filter(pk=obj.pk).exists():
                    row.save()
            # Saved with their own ids, which a flush that restarted the sequences (reset_sequences)
            # would hand out again: each sequence moves past the highest id, as loaddata does.
            beat = [apps.get_model("django_celery_beat", name) for name in _BEAT_MODELS]
            with connection.cursor() as cursor:
                for statement in connection.ops.sequence_reset_sql(no_style(), beat):
                    cursor.execute(statement)
