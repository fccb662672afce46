from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "apps.sso"
    label = "sso"
    verbose_name = "Single sign-on"

    def ready(self) -> None:
        from allauth.socialaccount.signals import pre_social_login

        from .signup_guard import on_pre_social_login

        pre_social_login.connect(on_pre_social_login, dispatch_uid="sso.team_seat_guard")
