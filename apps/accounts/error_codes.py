"""Stable error codes of the accounts domain."""

from enum import StrEnum


class AccountsErrorCode(StrEnum):
    EMAIL_TAKEN = "email_taken"
    INVALID_CREDENTIALS = "invalid_credentials"
    ACCOUNT_DISABLED = "account_disabled"
    REFRESH_TOKEN_INVALID = "refresh_token_invalid"
    REFRESH_TOKEN_EXPIRED = "refresh_token_expired"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    EMAIL_NOT_VERIFIED = "email_not_verified"
    EMAIL_ALREADY_VERIFIED = "email_already_verified"
    ACCOUNT_DELETION_BLOCKED = "account_deletion_blocked"
