"""Rules higher apps add to password login (a team that enforces SSO refuses its members' passwords).

Accounts knows nothing of teams: ``password_login_rule_register`` is called from their
``AppConfig.ready``; each rule raises an ``ApplicationError`` to refuse.
"""

from __future__ import annotations

from collections.abc import Callable

from .models import User

PasswordLoginRule = Callable[[User], None]

_rules: list[PasswordLoginRule] = []


def password_login_rule_register(rule: PasswordLoginRule) -> None:
    if rule not in _rules:
        _rules.append(rule)


def password_login_rules_check(*, user: User) -> None:
    """Raise the first refusal of a registered rule for ``user``'s password login."""
    for rule in _rules:
        rule(user)
