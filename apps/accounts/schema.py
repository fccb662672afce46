"""OpenAPI description of the bearer JWT scheme (drf-spectacular extension)."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class AccessTokenScheme(SimpleJWTScheme):
    target_class = "apps.accounts.authentication.AccessTokenAuthentication"
    name = "accessToken"
