"""Model fields sealed with the row owner's key: plaintext in Python, Fernet ciphertext in the column.

A model with ``user_id`` declares ``name = SealedTextField(max_length=200)`` and keeps reading and
writing ``config.name`` as text; what reaches PostgreSQL (heap, WAL, backups) is the user's Fernet
token. The value is sealed in ``pre_save`` (so through ``save()``/``create()``; ``QuerySet.update``
and ``bulk_update`` of these fields are refused) and unsealed as the row is loaded, in the thread
that ran the query, so async code reading the attribute never touches the database for the key.
Sealed columns cannot be searched, ordered or compared in SQL.
"""

from __future__ import annotations

import json
from typing import Any

from django.core import checks
from django.db import models
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init

from .keys import decrypt_for_user, encrypt_for_user

OWNER_ATTNAME = "user_id"


class _SealedAttribute(DeferredAttribute):
    """Loads a deferred column like Django does, then unseals a freshly loaded token once.

    A data descriptor (it has ``__set__``), so reads come here even when the token is already in
    the instance's ``__dict__``.
    """

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.field.attname] = value

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, bytes | memoryview):
            field: _SealedField = self.field  # type: ignore[assignment]
            value = field.unseal(owner_id=getattr(instance, OWNER_ATTNAME), token=bytes(value))
            instance.__dict__[field.attname] = value
        return value


def _unseal_on_load(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    for field in sender._meta.concrete_fields:
        if isinstance(field, _SealedField):
            value = instance.__dict__.get(field.attname)
            if isinstance(value, bytes | memoryview):
                instance.__dict__[field.attname] = field.unseal(
                    owner_id=getattr(instance, OWNER_ATTNAME), token=bytes(value)
                )


class _SealedField(models.BinaryField):
    descriptor_class = _SealedAttribute

    def contribute_to_class(self, cls: type[models.Model], name: str, private_only: bool = False) -> None:
        super().contribute_to_class(cls, name, private_only=private_only)
        if not cls._meta.abstract:
            post_init.connect(_unseal_on_load, sender=cls, weak=False, dispatch_uid=f"sealed-fields:{cls._meta.label}")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("editable", True)
        super().__init__(*args, **kwargs)

    def get_default(self) -> Any:
        default = super().get_default()
        return None if default == b"" else default  # BinaryField's empty default is bytes: not a token

    def _check_str_default_value(self) -> list[checks.CheckMessage]:
        return []  # the default is a plaintext value (sealed on save), not the column's bytes

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = super().check(**kwargs)
        if not any(f.attname == OWNER_ATTNAME for f in self.model._meta.concrete_fields):
            errors.append(checks.Error(f"{self.__class__.__name__} needs a {OWNER_ATTNAME} on its model.", obj=self))
        return errors

    # --- what subclasses define -------------------------------------------------------------

    def to_text(self, value: Any) -> str:
        raise NotImplementedError

    def from_text(self, text: str) -> Any:
        raise NotImplementedError

    # --- sealing ----------------------------------------------------------------------------

    def unseal(self, *, owner_id: Any, token: bytes) -> Any:
        return self.from_text(decrypt_for_user(user_id=owner_id, token=token))

    def pre_save(self, model_instance: models.Model, add: bool) -> bytes:
        value = getattr(model_instance, self.attname)
        return encrypt_for_user(user_id=getattr(model_instance, OWNER_ATTNAME), plaintext=self.to_text(value))

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if value is not None and not isinstance(value, bytes | memoryview):
            # Only pre_save knows the row's owner; plaintext here came through update()/bulk_update().
            raise TypeError(f"{self.name} is sealed with its owner's key: write it through save().")
        return super().get_db_prep_value(value, connection, prepared)

    def value_to_string(self, obj: models.Model) -> str:
        return self.to_text(self.value_from_object(obj))

    def to_python(self, value: Any) -> Any:
        return value


class SealedTextField(_SealedField):
    """Text sealed with the owner's key; ``max_length`` is enforced on the plaintext by callers."""

    # What django-stubs' plugin types the attribute as (the column is bytes, the attribute is not).
    _pyi_private_set_type: str
    _pyi_private_get_type: str  # type: ignore[assignment]

    def __init__(self, *args: Any, max_length: int | None = None, **kwargs: Any) -> None:
        self.plaintext_max_length = max_length
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self.plaintext_max_length is not None:
            kwargs["max_length"] = self.plaintext_max_length
        return name, path, args, kwargs

    def to_text(self, value: Any) -> str:
        return "" if value is None else str(value)

    def from_text(self, text: str) -> str:
        return text


class SealedJSONField(_SealedField):
    """A JSON value sealed with the owner's key."""

    _pyi_private_set_type: Any
    _pyi_private_get_type: Any

    def to_text(self, value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))

    def from_text(self, text: str) -> Any:
        return json.loads(text)
