"""``manage.py tallies_check [--repair]``: every registered tally (``apps.core.tallies``) against its
rows. Exits 1 when one differs and was not repaired, so a monitor can run it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.tallies import tallies_audit


class Command(BaseCommand):
    help = "Compare each tally (list counts, storage bytes) with the rows it counts; --repair sets it right."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repair", action="store_true", help="recompute the tallies that differ from their rows")

    def handle(self, *args: Any, repair: bool = False, **options: Any) -> None:
        audits = tallies_audit(repair=repair)
        for audit in audits:
            name = f"{audit.tally.source} → {audit.tally.tally}"
            if not audit.drifted:
                self.stdout.write(f"{name}: exact")
                continue
            self.stdout.write(f"{name}: {len(audit.drifted)} group(s) differ, e.g. {audit.drifted[0]}")
            if audit.repaired:
                self.stdout.write(f"  repaired: {'exact' if not audit.left else f'{len(audit.left)} still differ'}")
        if drifted := sum(not audit.exact for audit in audits):
            raise CommandError(f"{drifted} tally(ies) differ from their rows (run with --repair)", returncode=1)
