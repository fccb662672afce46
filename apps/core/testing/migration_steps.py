"""Moving a test database's schema between migrations, for tests of a data migration: the rows
written at one state, the migration run forward (or back), and the latest schema again at the end
whatever the test did (the next test expects it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


class MigrationSteps:
    def to(self, *targets: tuple[str, str]) -> Apps:
        """Migrate to ``targets`` (each ``(app, migration name)``, forward or back); the models as
        they were there, for writing rows as that schema had them."""
        executor = MigrationExecutor(connection)  # a fresh one each time: its graph reflects what ran
        executor.migrate(list(targets))
        return executor.loader.project_state(list(targets)).apps


@contextmanager
def migration_steps() -> Iterator[MigrationSteps]:
    """``MigrationSteps`` for a ``transaction=True`` test, the latest migrations applied again on exit."""
    try:
        yield MigrationSteps()
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
