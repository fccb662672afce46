"""Associative search without an ANN index: a Hamming first pass over sign bits, then exact re-rank.

Chosen by bench/memory_enrichment.py at 1,000,000 memories (100 users x 10,000): each row gets
``embedding_bits``, the sign bit of each dimension (``binary_quantize``; 192 bytes instead of 6 KB),
computed by PostgreSQL as a stored generated column, so no writer can forget it. A covering btree
on ``(user_id) INCLUDE (embedding_bits, id)`` keeps one owner's bits side by side: the first pass
is an index-only scan of about 2.7 MB per 10,000 memories, and only its shortlist is re-ranked by
exact cosine on the full vectors. It replaces the HNSW index of 0006, which under the per-user
filter also walked other users' rows and took minutes per 100,000 rows to build; its database
settings (``hnsw.*``) go with it.

Adding a stored generated column rewrites the table once, under an exclusive lock (about 16 s per
100,000 memories on the benchmark's box, with the HNSW index dropped first so that the rewrite does
not rebuild it). The covering index is built concurrently. Reversing restores 0006 (HNSW index
built concurrently, settings set again).
"""

import django.db.models.functions.comparison
import pgvector.django.bit
from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models

HNSW_INDEX = "memory_assoc_embedding_hnsw"
HNSW_SETTINGS = {"hnsw.iterative_scan": "relaxed_order", "hnsw.ef_search": "100"}


def hnsw_settings_reset(apps, schema_editor):
    quoted = schema_editor.quote_name(schema_editor.connection.settings_dict["NAME"])
    for name in HNSW_SETTINGS:
        schema_editor.execute(f"ALTER DATABASE {quoted} RESET {name}")


def hnsw_settings_restore(apps, schema_editor):
    quoted = schema_editor.quote_name(schema_editor.connection.settings_dict["NAME"])
    for name, value in HNSW_SETTINGS.items():
        schema_editor.execute(f"ALTER DATABASE {quoted} SET {name} = '{value}'")


class Migration(migrations.Migration):
    atomic = False  # CREATE / DROP INDEX CONCURRENTLY
    dependencies = [
        ("memory", "0006_associative_hnsw_iterative"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # First: the table rewrite below would otherwise rebuild this index too (minutes, locked).
        migrations.RunSQL(
            f"DROP INDEX CONCURRENTLY IF EXISTS {HNSW_INDEX}",
            reverse_sql=f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {HNSW_INDEX} ON memory_associativememory "
            "USING hnsw ((embedding::halfvec(1536)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)",
        ),
        migrations.AddField(
            model_name="associativememory",
            name="embedding_bits",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.functions.comparison.Cast(
                    models.Func(models.F("embedding"), function="binary_quantize"),
                    output_field=pgvector.django.bit.BitField(length=1536),
                ),
                output_field=pgvector.django.bit.BitField(length=1536),
            ),
        ),
        AddIndexConcurrently(
            model_name="associativememory",
            index=models.Index(fields=["user"], include=("embedding_bits", "id"), name="memory_assoc_user_bits"),
        ),
        migrations.RunPython(hnsw_settings_reset, hnsw_settings_restore),
    ]
