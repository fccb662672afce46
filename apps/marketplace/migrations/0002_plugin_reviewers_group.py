"""The "Plugin reviewers" group: staff who review plugins and nothing else in the admin."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

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


def create_group(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); create ours now.
    app_config = apps.get_app_config("marketplace")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP_NAME)
    for app_label, codename in PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def delete_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("marketplace", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, delete_group)]
