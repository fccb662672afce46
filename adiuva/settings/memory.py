"""Memory learning: per-user caps, episode summaries, proactive patterns."""

from __future__ import annotations

from .environment import env

# MEMORY LEARNING (episode summaries, learned associative memories, proactive patterns)
# ------------------------------------------------------------------------------
# Per-user caps; over a cap the eviction rule of apps/memory/retention.py applies (associative:
# least recently reinforced first; episodic: oldest first; proactive: least confident first).
MEMORY_ASSOCIATIVE_MAX_PER_USER = env.int("MEMORY_ASSOCIATIVE_MAX_PER_USER", default=10000)
MEMORY_EPISODES_MAX_PER_USER = env.int("MEMORY_EPISODES_MAX_PER_USER", default=2000)
MEMORY_PATTERNS_MAX_PER_USER = env.int("MEMORY_PATTERNS_MAX_PER_USER", default=50)
# Attempts at an episode's summary before it is left without one.
MEMORY_SUMMARY_MAX_ATTEMPTS = env.int("MEMORY_SUMMARY_MAX_ATTEMPTS", default=5)
# Pattern derivation reads the user's last N summaries of the last D days.
MEMORY_PATTERN_EPISODES = env.int("MEMORY_PATTERN_EPISODES", default=30)
MEMORY_PATTERN_LOOKBACK_DAYS = env.int("MEMORY_PATTERN_LOOKBACK_DAYS", default=30)
