from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "apps.sso"
    label = "sso"
    verbose_name = "Single sign-on"

    def ready(self) -> None:
        from allauth.account.signals import user_logged_in
        from allauth.socialaccount.signals import pre_social_login

        from apps.accounts.deletion import register_sign_in_proof
        from apps.accounts.social_apps import register_social_app_source

        from .services import sso_code_prove_sign_in
        from .signup_guard import on_pre_social_login
        from .team_providers import on_user_logged_in, team_social_apps

        pre_social_login.connect(on_pre_social_login, dispatch_uid="sso.team_seat_guard")
        user_logged_in.connect(on_user_logged_in, dispatch_uid="sso.remember_provider")
        register_social_app_source("team_oidc", team_social_apps)
        register_sign_in_proof("sso", sso_code_prove_sign_in)
