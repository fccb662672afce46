from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Users and sessions"  # allauth's own app is "Accounts" (e-mail addresses)

    def ready(self) -> None:
        from . import schema  # noqa: F401  registers the OpenAPI auth extension
