"""The admin's login form, throttled like allauth's own login page.

Both go through allauth's ``authenticate``, which spends the ``login_failed`` rate limit
(``ACCOUNT_RATE_LIMITS``: per client address and per account, shared by the two pages) before the
password is checked, and gives the attempt back when it succeeds. Once the limit is spent even the
right password is refused until the window passes, with allauth's "Too many failed login
attempts" message on the form.
"""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import get_adapter
from django.contrib.admin.forms import AdminAuthenticationForm


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            # Raises a ValidationError (shown on the form) when the rate limit is spent.
            self.user_cache = get_adapter(self.request).authenticate(self.request, username=username, password=password)
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data
