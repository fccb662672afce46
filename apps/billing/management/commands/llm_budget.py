"""``manage.py llm_budget EMAIL --monthly-tokens N``: give one user a monthly token budget of their own
(``--tier`` puts them back on their tier's); audited like the admin's change."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.billing.budgets import llm_budget_of, llm_budget_override_set


class Command(BaseCommand):
    help = "Set (or clear with --tier) a user's monthly LLM token budget."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--monthly-tokens", type=int, help="tokens per calendar month (0 stops model calls)")
        group.add_argument("--tier", action="store_true", help="drop the override: the tier's budget applies")

    def handle(self, *args: Any, email: str, monthly_tokens: int | None, tier: bool, **options: Any) -> None:
        user = get_user_model().objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"No user with e-mail {email}.")
        if monthly_tokens is not None and monthly_tokens < 0:
            raise CommandError("--monthly-tokens must be zero or more.")
        llm_budget_override_set(user=user, monthly_tokens=None if tier else monthly_tokens, actor=None)
        budget = llm_budget_of(user)
        self.stdout.write(f"{user.email}: {'unlimited' if budget is None else budget} tokens per month")
