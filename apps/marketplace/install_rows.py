"""A user's install rows of a plugin: the active one, and creating or revoking one under the
plugin's row lock; shared by the install door (``installs``) and the payment settlement (``payments``)."""

from __future__ import annotations

from typing import Any

from django.db.models import F
from django.utils import timezone

from .models import Plugin, PluginInstall


def active_install(*, user: Any, plugin: Plugin) -> PluginInstall | None:
    return (
        PluginInstall.objects.select_related("version", "plugin")
        .filter(user=user, plugin=plugin, uninstalled_at__isnull=True)
        .first()
    )


def install_create_locked(*, user: Any, plugin: Plugin) -> PluginInstall:
    """Install the listed version; the caller holds the plugin's row lock."""
    existing = active_install(user=user, plugin=plugin)
    if existing is not None:
        return existing
    assert plugin.latest_version is not None  # a listed plugin has one (plugin_for_install)
    install = PluginInstall.objects.create(user=user, plugin=plugin, version=plugin.latest_version)
    Plugin.objects.filter(pk=plugin.pk).update(install_count=F("install_count") + 1)
    return install


def install_revoke_locked(*, install: PluginInstall) -> None:
    """Mark an install removed; the caller holds the plugin's row lock."""
    updated = PluginInstall.objects.filter(pk=install.pk, uninstalled_at__isnull=True).update(
        uninstalled_at=timezone.now(), updated_at=timezone.now()
    )
    if updated:
        Plugin.objects.filter(pk=install.plugin_id, install_count__gt=0).update(install_count=F("install_count") - 1)
