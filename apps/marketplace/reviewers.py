"""The "Plugin reviewers" group: staff who review plugins and nothing else in the admin.

Created by migration 0002 and kept in place after every ``migrate`` / ``flush`` (post_migrate), so
a database flushed by a transactional test or an operator still has the group and its permissions.
"""

from __future__ import annotations

from typing import Any

GROUP_NAME = "Plugin reviewers"
# (app_label, codename): read the queue and history, decide, suspend. No add/change/delete of rows:
# decisions go through the admin actions, which check review_pluginversion / suspend_plugin.
PERMISSIONS = [
    ("marketplace", "view_plugin"),
    ("marketplace", "view_pluginversion"),
    ("marketplace", "view_pluginreview"),
    ("marketplace", "review_pluginversion"),
    ("marketplace", "suspend_plugin"),
]


def reviewers_group_ensure(**_: Any) -> None:
    """Create the group with exactly its permissions when missing (a post_migrate receiver)."""
    from django.contrib.auth.models import Group, Permission

    group, created = Group.objects.get_or_create(name=GROUP_NAME)
    if not created:
        return
    for app_label, codename in PERMISSIONS:
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission is not None:
            group.permissions.add(permission)
