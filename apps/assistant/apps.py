"""The assistant app: plugs its chat handlers into the device socket's frame registry and its
learning model into memory."""

from django.apps import AppConfig


class AssistantConfig(AppConfig):
    name = "apps.assistant"
    label = "assistant"
    verbose_name = "Assistant"

    def ready(self) -> None:
        from django.core import checks

        from apps.devices.handlers import register_request_handler
        from apps.memory.learning import register_learning_model

        from .checks import embedding_dimensions_check
        from .langsmith_runtime import langsmith_hooks_inline_install
        from .memory_model import LlmLearningModel
        from .streaming import handle_floating_request, handle_home_request

        register_request_handler("home_request", handle_home_request)
        register_request_handler("floating_request", handle_floating_request)
        # Memory learns from turns (summaries, facts, patterns) with the subagent model.
        register_learning_model(LlmLearningModel())
        checks.register(embedding_dimensions_check)
        # The agents' middleware hooks would hop to a thread and back twice each per model call.
        langsmith_hooks_inline_install()
