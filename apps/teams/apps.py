"""Teams: members with roles, seats and invitations (the team tier sold per seat)."""

from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "apps.teams"
    label = "teams"
    verbose_name = "Teams"

    def ready(self) -> None:
        from apps.accounts.deletion import register_account_deletion_blocker
        from apps.accounts.login_policy import password_login_rule_register

        from .selectors import team_ownership_blocks_deletion
        from .services import password_login_refuse_if_sso_enforced

        password_login_rule_register(password_login_refuse_if_sso_enforced)
        register_account_deletion_blocker("teams", team_ownership_blocks_deletion)
