from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "apps.memory"
    label = "memory"
    verbose_name = "Memory"

    def ready(self) -> None:
        from apps.core.tallies import Tally, register_tally

        from .models import MODEL_OF_KIND, MemoryTally

        for kind, model in MODEL_OF_KIND.items():  # as migration 0009 made them
            register_tally(
                Tally(
                    source=model._meta.db_table,
                    tally=MemoryTally._meta.db_table,
                    keys=("user_id",),
                    sums={"items": "1"},
                    fixed={"kind": f"'{kind.value}'"},
                )
            )
