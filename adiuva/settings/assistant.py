"""The assistant: the OpenAI-compatible chat and embedding models and their limits."""

from __future__ import annotations

from .environment import env

# ASSISTANT (LLM chat and embedding models through langchain-openai)
# ------------------------------------------------------------------------------
# Any OpenAI-compatible server works (OpenAI, vLLM, Ollama…). Without OPENAI_API_KEY chat
# answers an ``llm_not_configured`` error frame (503 on REST) that says what to set.
OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="")
ASSISTANT_SUPERVISOR_MODEL = env("ASSISTANT_SUPERVISOR_MODEL", default="gpt-4o-mini")
ASSISTANT_SUBAGENT_MODEL = env("ASSISTANT_SUBAGENT_MODEL", default="gpt-4o-mini")
ASSISTANT_EMBEDDING_MODEL = env("ASSISTANT_EMBEDDING_MODEL", default="text-embedding-3-small")
ASSISTANT_EMBEDDING_DIMENSIONS = env.int("ASSISTANT_EMBEDDING_DIMENSIONS", default=1536)
ASSISTANT_LLM_TIMEOUT = env.float("ASSISTANT_LLM_TIMEOUT", default=60.0)
ASSISTANT_LLM_MAX_RETRIES = env.int("ASSISTANT_LLM_MAX_RETRIES", default=2)
ASSISTANT_TOOL_TIMEOUT = env.float("ASSISTANT_TOOL_TIMEOUT", default=30.0)
ASSISTANT_REQUEST_TIMEOUT = env.float("ASSISTANT_REQUEST_TIMEOUT", default=300.0)
ASSISTANT_MAX_MESSAGE_CHARS = env.int("ASSISTANT_MAX_MESSAGE_CHARS", default=8000)
ASSISTANT_RECURSION_LIMIT = env.int("ASSISTANT_RECURSION_LIMIT", default=40)
