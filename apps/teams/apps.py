"""Teams: members with roles, seats and invitations (the team tier sold per seat)."""

from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "apps.teams"
    label = "teams"
    verbose_name = "Teams"

    def ready(self) -> None:
        from apps.accounts.deletion import register_account_deletion_blocker
        from apps.accounts.login_policy import password_login_rule_register
        from apps.accounts.master_key_rotation import register_master_key_rotator

        from .identity_provider import identity_provider_secrets_rotate
        from .selectors import team_ownership_blocks_deletion
        from .services import password_login_refuse_if_sso_enforced

        password_login_rule_register(password_login_refuse_if_sso_enforced)
        register_account_deletion_blocker("teams", team_ownership_blocks_deletion)
        register_master_key_rotator(
            "team_identity_provider_secrets", lambda batch_size: identity_provider_secrets_rotate(batch_size=batch_size)
        )
