"""The cloud providers a user can connect (OAuth grants) and read from (mail and messages)."""

from django.db import models


class Provider(models.TextChoices):
    GMAIL = "gmail", "Gmail"
    OUTLOOK = "outlook", "Outlook"
    TEAMS = "teams", "Microsoft Teams"
