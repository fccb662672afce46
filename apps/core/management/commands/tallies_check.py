"""``manage.py tallies_check [--repair]``: every registered tally (``apps.core.tallies``) against its
rows. Exits 1 when one differs and was not repaired, so a monitor can run it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.tallies import registered_tallies, tally_drift, tally_repair


class Command(BaseCommand):
    help = "Compare each tally (list counts, storage bytes) with the rows it counts; --repair sets it right."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repair", action="store_true", help="recompute the tallies that differ from their rows")

    def handle(self, *args: Any, repair: bool = False, **options: Any) -> None:
        drifted = 0
        for tally in registered_tallies():
            wrong = tally_drift(tally)
            if not wrong:
                self.stdout.write(f"{tally.source} → {tally.tally}: exact")
                continue
            self.stdout.write(f"{tally.source} → {tally.tally}: {len(wrong)} group(s) differ, e.g. {wrong[0]}")
            if repair:
                tally_repair(tally)
                left = tally_drift(tally)
                self.stdout.write(f"  repaired: {'exact' if not left else f'{len(left)} still differ'}")
                drifted += bool(left)
            else:
                drifted += 1
        if drifted:
            raise CommandError(f"{drifted} tally(ies) differ from their rows (run with --repair)", returncode=1)
