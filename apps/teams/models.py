"""Teams, their members (a user belongs to at most one team) and the invitations that hold seats.

Seats are not counted here from a subscription: billing writes ``subscribed_seats`` (the Stripe
quantity) and staff write the grant; a team has the larger of the two while either is in force.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.core.models import BaseModel


class TeamRole(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


MANAGING_ROLES = frozenset({TeamRole.OWNER, TeamRole.ADMIN})


class Team(BaseModel):
    name = models.CharField(max_length=100)
    # Written only by billing (``team_subscribed_seats_set``): the quantity of the owner's team plan.
    subscribed_seats = models.PositiveIntegerField(default=0)
    # Staff grants without Stripe (invoiced customers, trials); ``granted_until`` is the last day.
    granted_seats = models.PositiveIntegerField(default=0)
    granted_until = models.DateField(null=True, blank=True)
    # Set when the owner deletes the team: no new invitations; it goes when its seats run out.
    dissolving_at = models.DateTimeField(null=True, blank=True)
    enforce_sso = models.BooleanField(default=False)

    def grant_in_force(self, *, today: datetime.date | None = None) -> bool:
        today = today or timezone.localdate()
        return self.granted_seats > 0 and (self.granted_until is None or self.granted_until >= today)

    @property
    def seats(self) -> int:
        granted = self.granted_seats if self.grant_in_force() else 0
        return max(self.subscribed_seats, granted)

    @property
    def is_active(self) -> bool:
        """Whether the team grants its members the team tier (a subscription or a grant in force)."""
        return self.seats > 0

    def __str__(self) -> str:
        return self.name


class Membership(BaseModel):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    # One team per user: the database refuses a second membership whatever the code does.
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_membership")
    role = models.CharField(max_length=16, choices=TeamRole.choices, default=TeamRole.MEMBER)

    class Meta(BaseModel.Meta):
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["team"], condition=Q(role="owner"), name="teams_one_owner_per_team"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.team_id} as {self.role}"


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def pending(self) -> InvitationQuerySet:
        """Invitations that still hold a seat: not accepted, not revoked, not expired."""
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())


class Invitation(BaseModel):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)  # stored lower-cased
    role = models.CharField(max_length=16, choices=TeamRole.choices, default=TeamRole.MEMBER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Only the SHA-256 of the e-mailed token is kept.
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta(BaseModel.Meta):
        indexes = [models.Index(fields=["email", "accepted_at", "revoked_at"], name="teams_invitation_email_idx")]

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and not self.is_expired

    def __str__(self) -> str:
        return f"invitation of {self.email} to {self.team_id}"


class TeamDomain(BaseModel):
    """An e-mail domain a team claims; it counts (for SSO) once proven by a DNS TXT record
    ``adiuva-verification=<token>`` or by staff. A domain belongs to at most one team."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="domains")
    domain = models.CharField(max_length=253, unique=True)  # stored lower-cased, no trailing dot
    verification_token = models.CharField(max_length=64)
    verified_at = models.DateTimeField(null=True, blank=True)
    # How it was proven: "dns" or "staff"; empty while unproven.
    verified_by = models.CharField(max_length=8, blank=True)

    class Meta(BaseModel.Meta):
        ordering = ["domain"]

    @property
    def txt_record(self) -> str:
        return f"adiuva-verification={self.verification_token}"

    @property
    def is_verified(self) -> bool:
        return self.verified_at is not None

    def __str__(self) -> str:
        return self.domain


class TeamIdentityProvider(BaseModel):
    """The team's own OpenID Connect provider: signing in through it with an address in one of the
    team's proven domains joins the team. The client secret rests encrypted under the server's
    master keys (``FERNET_MASTER_KEYS``) and is decrypted only in memory, to talk to the provider."""

    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="identity_provider")
    issuer = models.URLField(max_length=500)  # https, no trailing slash
    client_id = models.CharField(max_length=255)
    secret_encrypted = models.BinaryField()

    class Meta(BaseModel.Meta):
        verbose_name = "team identity provider"

    @property
    def provider_id(self) -> str:
        """The allauth ``provider_id`` (and SocialAccount ``provider``) of this team's provider."""
        return team_provider_id(self.team_id)

    def __str__(self) -> str:
        return f"{self.issuer} for {self.team_id}"


TEAM_PROVIDER_PREFIX = "team-"


def team_provider_id(team_id: object) -> str:
    return f"{TEAM_PROVIDER_PREFIX}{team_id}"
