"""Grant a team seats without Stripe (invoiced customers, trials), audited; --seats 0 withdraws."""

from __future__ import annotations

import datetime
import uuid

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.teams.models import Team
from apps.teams.seats import team_seats_grant


def _date(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--until must be YYYY-MM-DD, not {value!r}.") from exc


class Command(BaseCommand):
    help = "Grant a team N seats without Stripe, optionally until a day (inclusive); audited. --seats 0 withdraws."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("team_id", type=uuid.UUID)
        parser.add_argument("--seats", type=int, required=True)
        parser.add_argument("--until", type=_date, default=None, help="Last day of the grant, YYYY-MM-DD.")

    def handle(
        self, *args: object, team_id: uuid.UUID, seats: int, until: datetime.date | None, **options: object
    ) -> None:
        if seats < 0:
            raise CommandError("--seats must be 0 or more.")
        team = Team.objects.filter(pk=team_id).first()
        if team is None:
            raise CommandError(f"No team {team_id}.")
        team = team_seats_grant(team=team, seats=seats, until=until, actor=None, via="command")
        ending = f" until {until.isoformat()}" if until and seats else ""
        self.stdout.write(f"{team.name}: {seats} granted seats{ending}; {team.seats} seats in force.")
