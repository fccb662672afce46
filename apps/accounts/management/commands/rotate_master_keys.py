"""Re-encrypt everything sealed under FERNET_MASTER_KEYS (the per-user keys, and what other apps
registered) under its first key, after a new key was prepended."""

from django.core.management.base import BaseCommand

from apps.accounts.keys import user_keys_rewrap
from apps.accounts.master_key_rotation import master_key_rotators
from apps.core.audit import AuditAction, audit_record


class Command(BaseCommand):
    help = (
        "Re-encrypt all per-user keys and every other master-key-sealed value (e.g. team identity "
        "provider secrets) with the current primary master key. Put the new key first in "
        "FERNET_MASTER_KEYS, keep the old ones after it, run this, then drop the old keys."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, **options):
        batch_size = options["batch_size"]
        count = user_keys_rewrap(batch_size=batch_size)
        others = {name: rotate(batch_size) for name, rotate in master_key_rotators().items()}
        audit_record(action=AuditAction.MASTER_KEYS_ROTATED, actor=None, data={"rewrapped_user_keys": count, **others})
        self.stdout.write(self.style.SUCCESS(f"Re-wrapped {count} user key(s)."))
        for name, rotated in others.items():
            self.stdout.write(self.style.SUCCESS(f"Re-encrypted {rotated} {name.replace('_', ' ')}."))
