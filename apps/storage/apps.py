from django.apps import AppConfig


class StorageConfig(AppConfig):
    name = "apps.storage"
    label = "storage"
    verbose_name = "Storage"

    def ready(self) -> None:
        from apps.accounts.deletion import register_account_eraser

        from .erasure import storage_erase_user

        register_account_eraser("storage", storage_erase_user)
