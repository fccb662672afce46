"""Seal agent configs' user content with the owner's key: ``name`` and ``prompt_template`` of both
kinds, a cloud agent's ``filter_config``. Existing rows are encrypted in place; reversing decrypts
them back into the plain columns."""

import json

import django.db.models
from django.db import migrations

import apps.accounts.sealed_fields

# (model, field, how a plain value becomes text and back)
SEALED = [
    ("localagentconfig", "name", "text"),
    ("localagentconfig", "prompt_template", "text"),
    ("cloudagentconfig", "name", "text"),
    ("cloudagentconfig", "prompt_template", "text"),
    ("cloudagentconfig", "filter_config", "json"),
]
TABLES = {"localagentconfig": "agents_localagentconfig", "cloudagentconfig": "agents_cloudagentconfig"}


def _sealed_field(field: str, kind: str):
    if kind == "json":
        return apps.accounts.sealed_fields.SealedJSONField(blank=True, default=dict)
    if field == "name":
        return apps.accounts.sealed_fields.SealedTextField(max_length=200)
    return apps.accounts.sealed_fields.SealedTextField(blank=True, default="")


def seal_rows(apps_registry, schema_editor):
    # The live key module (not a historical model): the user keys it reads are the ones in use.
    from apps.accounts.keys import encrypt_for_user

    for model_name in TABLES:
        model = apps_registry.get_model("agents", model_name)
        fields = [(f, kind) for m, f, kind in SEALED if m == model_name]
        for row in model.objects.all().iterator():
            for field, kind in fields:
                value = getattr(row, field)
                text = json.dumps(value, separators=(",", ":")) if kind == "json" else value
                setattr(row, f"{field}_sealed", encrypt_for_user(user_id=row.user_id, plaintext=text))
            row.save(update_fields=[f"{field}_sealed" for field, _ in fields])


def unseal_rows(apps_registry, schema_editor):
    from apps.accounts.keys import decrypt_for_user

    for model_name in TABLES:
        model = apps_registry.get_model("agents", model_name)
        fields = [(f, kind) for m, f, kind in SEALED if m == model_name]
        for row in model.objects.all().iterator():
            for field, kind in fields:
                text = decrypt_for_user(user_id=row.user_id, token=bytes(getattr(row, f"{field}_sealed")))
                setattr(row, field, json.loads(text) if kind == "json" else text)
            row.save(update_fields=[field for field, _ in fields])


def _operations():
    add = [
        migrations.AddField(model, f"{field}_sealed", django.db.models.BinaryField(null=True))
        for model, field, _ in SEALED
    ]
    swap = []
    for model, field, kind in SEALED:
        if field == "name":
            # A default only so that, reversed, RemoveField can re-add the column to filled tables.
            swap.append(migrations.AlterField(model, field, django.db.models.CharField(max_length=200, default="")))
        swap += [
            # Reversed, RemoveField re-adds the plain column for unseal_rows to fill.
            migrations.RemoveField(model, field),
            migrations.RenameField(model, f"{field}_sealed", field),
            migrations.SeparateDatabaseAndState(
                state_operations=[migrations.AlterField(model, field, _sealed_field(field, kind))],
                database_operations=[
                    migrations.RunSQL(
                        f'ALTER TABLE "{TABLES[model]}" ALTER COLUMN "{field}" SET NOT NULL',
                        f'ALTER TABLE "{TABLES[model]}" ALTER COLUMN "{field}" DROP NOT NULL',
                    )
                ],
            ),
        ]
    return [*add, migrations.RunPython(seal_rows, unseal_rows), *swap]


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_user_time_zone"),
        ("agents", "0005_local_agent_paused_reason"),
    ]

    operations = _operations()
