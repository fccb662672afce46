"""Where paid seats come from: a registry billing fills in ``AppConfig.ready``.

Teams knows nothing of Stripe; changing the number of paid seats or ending the team's subscription
goes through the provider billing registers here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from apps.core.errors import ApplicationError

from .error_codes import TeamsErrorCode

if TYPE_CHECKING:
    from apps.accounts.models import User

    from .models import Team


class SeatProvider(Protocol):
    def seats_change(self, *, team: Team, seats: int, actor: User) -> None:
        """Change the paid seats (prorated) and store the new count on the team."""

    def subscription_end(self, *, team: Team, actor: User) -> None:
        """End the team's paid subscription at the end of its period (no-op without one)."""

    def billing_contact_transfer(
        self, *, team: Team, previous_owner: User, new_owner: User, actor: User | None
    ) -> dict[str, Any]:
        """The owner hands the team over: make the new owner the payer of the subscription the
        previous owner pays the team with, when possible; returns facts for the audit trail."""


_provider: SeatProvider | None = None


def seat_provider_register(provider: SeatProvider) -> None:
    global _provider
    _provider = provider


def seat_provider_if_registered() -> SeatProvider | None:
    """The registered provider, or None on a server that manages no paid seats."""
    return _provider


def seat_provider() -> SeatProvider:
    if _provider is None:
        raise ApplicationError(TeamsErrorCode.SEATS_NOT_MANAGED, "Seats cannot be changed on this server.", status=409)
    return _provider
