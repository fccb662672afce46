from typing import Any

from django.apps import AppConfig


def _on_tier_changed(sender: Any, *, user_id: Any, previous: str, tier: str, **kwargs: Any) -> None:
    from .tier_limits import storage_tier_changed

    storage_tier_changed(user_id=user_id, previous=previous, tier=tier)


class StorageConfig(AppConfig):
    name = "apps.storage"
    label = "storage"
    verbose_name = "Storage"

    def ready(self) -> None:
        from apps.core.tallies import Tally, register_tally

        # As migration 0006 made them.
        register_tally(
            Tally(
                source="storage_storagerecord",
                tally="storage_recordtally",
                keys=("user_id", "table"),
                sums={"records": "1", "bytes": "size_bytes"},
            )
        )
        register_tally(
            Tally(
                source="storage_vectoritem",
                tally="storage_vectortally",
                keys=("user_id",),
                sums={"items": "1", "bytes": "size_bytes"},
            )
        )

        from apps.accounts.deletion import register_account_eraser

        from .erasure import storage_erase_user

        register_account_eraser("storage", storage_erase_user)

        from apps.billing.signals import tier_changed

        tier_changed.connect(_on_tier_changed, dispatch_uid="storage.tier_changed")
