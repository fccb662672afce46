"""Stable error codes of single sign-on."""

from enum import StrEnum


class SsoErrorCode(StrEnum):
    SSO_CODE_INVALID = "sso_code_invalid"
    SSO_CODE_EXPIRED = "sso_code_expired"
    SSO_NOT_LOGGED_IN = "sso_not_logged_in"
