"""Stable error codes of the agents domain: configs, runs, schedules, journey, agent frames."""

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
    # agent_data / agent_complete frames
    AGENT_RUN_NOT_FOUND = "agent_run_not_found"  # unknown, malformed or another user's run_id
    AGENT_RUN_FINISHED = "agent_run_finished"  # data for a run that is no longer running
    AGENT_RUN_WRONG_DEVICE = "agent_run_wrong_device"  # data from a device the run was not sent to
    AGENT_RUN_BUSY = "agent_run_busy"  # the run's executor is not keeping up; resend later
    # reasons recorded in a run's errors
    AGENT_CONFIG_MISSING = "agent_config_missing"
    DEVICE_DROPPED = "device_dropped"
    DEVICE_IDLE = "device_idle"
    FILE_SKIPPED = "file_skipped"
    EXTRACTION_FAILED = "extraction_failed"
    DELIVERY_FAILED = "delivery_failed"
    BUDGET_EXHAUSTED = "budget_exhausted"  # the user's monthly token budget is used up: the run did not start
