"""Users (UUID key, e-mail login, server-set tier), their wrapped Fernet keys and JWT sessions."""

from __future__ import annotations

from typing import ClassVar

from cryptography.fernet import Fernet
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from apps.core.encryption import wrap_key
from apps.core.models import BaseModel


class Tier(models.TextChoices):
    FREE = "free", "Free"
    PRO = "pro", "Pro"
    POWER = "power", "Power"
    TEAM = "team", "Team"


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: object) -> User:
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        UserKey.objects.ensure_for(user)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self._create_user(email, password, **extra)


class User(BaseModel, AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(max_length=254, unique=True)  # stored lower-cased
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    # Set only by the server (billing); never accepted from a client.
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.FREE)
    # IANA name; agent schedules (cron) run in this zone.
    time_zone = models.CharField(max_length=64, default="UTC")

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta(BaseModel.Meta):
        constraints = [models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email


class UserKeyManager(models.Manager["UserKey"]):
    def ensure_for(self, user: User) -> None:
        """Give ``user`` a fresh key, wrapped by the master keys, unless they already have one."""
        self.get_or_create(user=user, defaults={"wrapped_key": wrap_key(Fernet.generate_key())})


class UserKey(models.Model):
    """The user's Fernet key, encrypted under the server master keys; read it through ``keys``."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, primary_key=True, related_name="+")
    wrapped_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[UserKeyManager] = UserKeyManager()

    def __str__(self) -> str:
        return f"key of {self.user_id}"


class TokenFamily(BaseModel):
    """One login session of the desktop client: every rotated refresh token belongs to it."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="token_families")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=32, blank=True)

    class Meta(BaseModel.Meta):
        verbose_name_plural = "token families"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def __str__(self) -> str:
        return f"session {self.id} of {self.user_id}"


class RefreshToken(BaseModel):
    """A refresh token, stored only as its SHA-256; single use."""

    family = models.ForeignKey(TokenFamily, on_delete=models.CASCADE, related_name="refresh_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    def __str__(self) -> str:
        return f"refresh token {self.id}"
