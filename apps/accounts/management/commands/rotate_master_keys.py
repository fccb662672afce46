"""Re-wrap every user key under the first of FERNET_MASTER_KEYS (after prepending a new key)."""

from django.core.management.base import BaseCommand

from apps.accounts.keys import user_keys_rewrap
from apps.core.audit import AuditAction, audit_record


class Command(BaseCommand):
    help = (
        "Re-encrypt all per-user keys with the current primary master key. Put the new key first in "
        "FERNET_MASTER_KEYS, keep the old ones after it, run this, then drop the old keys."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, **options):
        count = user_keys_rewrap(batch_size=options["batch_size"])
        audit_record(action=AuditAction.MASTER_KEYS_ROTATED, actor=None, data={"rewrapped_user_keys": count})
        self.stdout.write(self.style.SUCCESS(f"Re-wrapped {count} user key(s)."))
