"""Signals accounts sends (after commit) so higher apps can react without accounts knowing them."""

from django.dispatch import Signal

# Sent once a user's time zone change is committed: kwargs user_id, previous, time_zone.
time_zone_changed = Signal()
