"""Stable error codes of the agents domain: configs, runs, schedules, journey."""

from enum import StrEnum


class AgentsErrorCode(StrEnum):
    AGENT_ALREADY_RUNNING = "agent_already_running"
    RUN_ALREADY_DISPATCHED = "run_already_dispatched"
    INVALID_SCHEDULE = "invalid_schedule"
    JOURNEY_NOT_FOUND = "journey_not_found"
    JOURNEY_EXPIRED = "journey_expired"
    JOURNEY_FINISHED = "journey_finished"
    JOURNEY_BUSY = "journey_busy"
    JOURNEY_LLM_FAILED = "journey_llm_failed"
