from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        # Every process that runs Django (web, worker, beat, shell) sends tasks through our app.
        import adiuva.celery  # noqa: F401

        from . import channel_layer_seal, metrics, redis_sends  # noqa: F401  (channel_layer_seal: registers the layer's serializer)

        redis_sends.install()

        metrics.connect_celery_signals()

        from django.core import checks

        from .django_middleware import protections_in_chain_check

        checks.register(protections_in_chain_check, checks.Tags.security, deploy=True)
