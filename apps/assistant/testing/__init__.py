"""Test and demo helpers for the assistant: a scripted OpenAI-compatible server."""
