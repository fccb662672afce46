"""Signals devices sends so higher apps can react without devices knowing them."""

from django.dispatch import Signal

# Sent inside the transaction that removes a device (kwargs user_id, device_id), so higher apps
# release what they bound to it in the same commit.
device_forgotten = Signal()
