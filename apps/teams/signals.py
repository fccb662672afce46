"""Signals teams sends so the tier writer (billing) can follow membership and seat changes."""

from django.dispatch import Signal

# Sent inside the transaction that changed it, so the tiers it implies commit (or roll back) with
# it: kwargs team_id, user_ids (the users whose team or whose team's seats changed).
team_entitlement_changed = Signal()
