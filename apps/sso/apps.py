from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "apps.sso"
    label = "sso"
    verbose_name = "Single sign-on"

    def ready(self) -> None:
        from allauth.socialaccount.signals import pre_social_login

        from apps.accounts.deletion import register_sign_in_proof

        from .services import sso_code_prove_sign_in
        from .signup_guard import on_pre_social_login

        pre_social_login.connect(on_pre_social_login, dispatch_uid="sso.team_seat_guard")
        register_sign_in_proof("sso", sso_code_prove_sign_in)
