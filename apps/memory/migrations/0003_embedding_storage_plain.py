"""Keep embeddings inline in the heap row instead of TOAST.

Search is an exact cosine scan over the owner's rows (bench/memory_enrichment.py chose it over
HNSW); a 1536-dim vector is 6 KB, which fits in an 8 KB page, and reading it inline saves a
TOAST index lookup and about three extra buffer reads per row. No ANN index is created on
purpose: with a per-user filter HNSW lost recall in the benchmark.
"""

from django.db import migrations

TABLES = ["memory_associativememory", "memory_episode"]


class Migration(migrations.Migration):
    dependencies = [("memory", "0002_memoryowner")]

    operations = [
        migrations.RunSQL(
            [f"ALTER TABLE {table} ALTER COLUMN embedding SET STORAGE PLAIN" for table in TABLES],
            reverse_sql=[f"ALTER TABLE {table} ALTER COLUMN embedding SET STORAGE EXTERNAL" for table in TABLES],
        ),
    ]
