"""The squashed dj-stripe migration used by test databases matches dj-stripe's installed models."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import call_command


@pytest.mark.django_db
def test_the_test_only_djstripe_migration_matches_the_installed_models():
    # given: test settings swap dj-stripe's slow history for one generated migration
    assert settings.MIGRATION_MODULES["djstripe"] == "apps.billing.tests.migrations.djstripe"

    # when / then: regenerate it (delete the file, run makemigrations djstripe) if dj-stripe changes
    try:
        call_command("makemigrations", "djstripe", check=True, dry_run=True, verbosity=0)
    except SystemExit as exc:  # makemigrations --check exits 1 when models and migrations differ
        pytest.fail(f"dj-stripe models changed; regenerate apps/billing/tests/migrations/djstripe ({exc})")
