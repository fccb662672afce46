"""Agent configs' user content is sealed with the owner's key in PostgreSQL, read back as plaintext by
the owner, and the migration seals existing rows (and unseals them when reversed)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction

from apps.accounts.keys import decrypt_for_user, user_keys_forget
from apps.agents.models import CloudAgentConfig, LocalAgentConfig
from apps.core.testing.migration_steps import migration_steps

from .conftest import make_cloud, make_local

BEFORE = ("agents", "0005_config_paused_reason_enabled_at")
SEALED = ("agents", "0006_seal_agent_content")


def _column(table: str, column: str, row_id) -> object:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}" FROM "{table}" WHERE id = %s', [row_id])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_the_columns_hold_the_owners_tokens_and_the_model_the_plaintext(pro_user):
    # given
    local = make_local(pro_user, name="Invoices of ACME", prompt_template="Tasks from ACME invoices")
    cloud = make_cloud(pro_user, filter_config={"senders": ["boss@acme.example"]})

    # then the columns are the owner's Fernet tokens
    raw_name = bytes(_column("agents_localagentconfig", "name", local.id))
    assert b"ACME" not in raw_name
    assert decrypt_for_user(user_id=pro_user.id, token=raw_name) == "Invoices of ACME"
    raw_filter = bytes(_column("agents_cloudagentconfig", "filter_config", cloud.id))
    assert b"boss@acme" not in raw_filter
    # and a fresh read (deferred too) is the plaintext again
    assert LocalAgentConfig.objects.get(id=local.id).prompt_template == "Tasks from ACME invoices"
    assert LocalAgentConfig.objects.only("id", "user_id").get(id=local.id).name == "Invoices of ACME"
    assert CloudAgentConfig.objects.get(id=cloud.id).filter_config == {"senders": ["boss@acme.example"]}


@pytest.mark.django_db
def test_a_bulk_write_of_a_sealed_field_is_refused_not_stored_in_plaintext(pro_user):
    local = make_local(pro_user, name="kept")

    with pytest.raises(TypeError, match="sealed"), transaction.atomic():
        LocalAgentConfig.objects.filter(id=local.id).update(name="plain")

    assert LocalAgentConfig.objects.get(id=local.id).name == "kept"


@pytest.mark.django_db(transaction=True)
def test_the_migration_seals_existing_rows_and_reversing_it_unseals_them(pro_user):
    with migration_steps() as steps:
        # given rows written before the migration, in plain columns
        old = steps.to(BEFORE)
        local = old.get_model("agents", "LocalAgentConfig").objects.create(
            user_id=pro_user.id, name="Old folder", prompt_template="old template", device_id="d1"
        )
        cloud = old.get_model("agents", "CloudAgentConfig").objects.create(
            user_id=pro_user.id, name="Old mail", provider="gmail", filter_config={"labels": ["old"]}
        )

        # when it runs
        steps.to(SEALED)

        # then the columns are tokens and the model reads the same values
        assert decrypt_for_user(
            user_id=pro_user.id, token=bytes(_column("agents_localagentconfig", "prompt_template", local.id))
        ) == ("old template")
        assert LocalAgentConfig.objects.get(id=local.id).name == "Old folder"
        assert CloudAgentConfig.objects.get(id=cloud.id).filter_config == {"labels": ["old"]}

        # when it is reversed, then the plain columns hold the plaintext again
        steps.to(BEFORE)
        assert _column("agents_localagentconfig", "name", local.id) == "Old folder"
        assert _column("agents_localagentconfig", "prompt_template", local.id) == "old template"
        assert json.loads(_column("agents_cloudagentconfig", "filter_config", cloud.id)) == {"labels": ["old"]}


@pytest.mark.django_db(transaction=True)
async def test_a_config_loaded_by_async_code_reads_as_plaintext_without_a_database_call(pro_user):
    # given a config, and a process that has not unwrapped its owner's key yet (a fresh worker)
    config = await sync_to_async(make_local)(pro_user, prompt_template="Tasks from invoices")
    user_keys_forget()

    # when async code loads it and reads it on the event loop (the run executor does)
    loaded = await LocalAgentConfig.objects.aget(id=config.id)

    # then it was unsealed as it loaded: no database call on the loop for the key
    assert loaded.prompt_template == "Tasks from invoices"
