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
        from apps.accounts.deletion import register_account_eraser

        from .erasure import storage_erase_user

        register_account_eraser("storage", storage_erase_user)

        from apps.billing.signals import tier_changed

        tier_changed.connect(_on_tier_changed, dispatch_uid="storage.tier_changed")
