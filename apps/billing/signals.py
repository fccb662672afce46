"""Signals billing sends (after commit) so higher apps can react without billing knowing them."""

from django.dispatch import Signal

# Sent once a tier change is committed: kwargs user_id, previous, tier.
tier_changed = Signal()
