"""Stable error codes of the teams domain."""

from enum import StrEnum


class TeamsErrorCode(StrEnum):
    TEAM_NOT_FOUND = "team_not_found"
    TEAM_ROLE_REQUIRED = "team_role_required"
    ALREADY_IN_TEAM = "already_in_team"
    ALREADY_MEMBER = "already_member"
    OWNER_MUST_TRANSFER = "owner_must_transfer"
    NO_FREE_SEAT = "no_free_seat"
    SEATS_IN_USE = "seats_in_use"
    INVITATION_NOT_FOUND = "invitation_not_found"
    INVITATION_EXPIRED = "invitation_expired"
    TEAM_DISSOLVING = "team_dissolving"
    SEATS_NOT_MANAGED = "seats_not_managed"
    SSO_REQUIRED = "sso_required"
    DOMAIN_TAKEN = "domain_taken"
    DOMAIN_NOT_PROVEN = "domain_not_proven"
    ISSUER_INVALID = "issuer_invalid"
    ISSUER_NOT_PUBLIC = "issuer_not_public"
    IDENTITY_PROVIDER_SECRET_REQUIRED = "identity_provider_secret_required"
