"""Associative search on pgvector 0.8: an HNSW index over half-precision copies of the embeddings,
searched with iterative index scans under the per-user filter, then re-ranked exactly.

Chosen by bench/memory_enrichment.py on PostgreSQL 18 + pgvector 0.8 (the engine everywhere):
the exact per-user scan costs what the user's rows cost (every 6 KB vector read), too slow at
10,000 memories per user. pgvector 0.6 had no iterative scans, so HNSW under a ``user_id``
filter returned too few rows (recall 0.44-0.99); with ``hnsw.iterative_scan = relaxed_order``
the scan continues until it has enough of the user's rows (up to ``hnsw.max_scan_tuples``).
The index is on ``embedding::halfvec(1536)`` (half the size, faster build; the re-rank uses the
full vectors). The planner still picks the ``(user_id, created_at)`` btree plus an exact sort
for users with few memories, where that is cheaper.

The settings are database defaults (``ALTER DATABASE ... SET``) so every session, pooled or
not, searches the same way; the index is built concurrently (no write lock on a live table).
"""

from django.db import migrations

INDEX = "memory_assoc_embedding_hnsw"
SETTINGS = {"hnsw.iterative_scan": "relaxed_order", "hnsw.ef_search": "100"}


def database_settings(apps, schema_editor):
    quoted = schema_editor.quote_name(schema_editor.connection.settings_dict["NAME"])
    for name, value in SETTINGS.items():
        schema_editor.execute(f"ALTER DATABASE {quoted} SET {name} = '{value}'")


def database_settings_reset(apps, schema_editor):
    quoted = schema_editor.quote_name(schema_editor.connection.settings_dict["NAME"])
    for name in SETTINGS:
        schema_editor.execute(f"ALTER DATABASE {quoted} RESET {name}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY
    dependencies = [("memory", "0005_learning_schedule")]

    operations = [
        migrations.RunSQL(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON memory_associativememory "
            "USING hnsw ((embedding::halfvec(1536)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)",
            reverse_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}",
        ),
        migrations.RunPython(database_settings, database_settings_reset),
    ]
