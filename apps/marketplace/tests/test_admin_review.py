"""Reviewers decide in the Django admin: the queue, the read-only checklist, approve / reject
actions with notes on an intermediate page, suspension, history, and nothing else."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.test import Client

from apps.core.models import AuditEvent
from apps.marketplace.models import Plugin, PluginReview, PluginStatus, PluginVersion, VersionStatus

from .conftest import REVIEWERS_GROUP, make_zip, make_zip_bomb

pytestmark = pytest.mark.django_db

QUEUE = "/admin/marketplace/pluginversion/"
PLUGINS_ADMIN = "/admin/marketplace/plugin/"


@pytest.fixture
def reviewer_client(reviewer) -> Client:
    client = Client()
    client.force_login(reviewer)
    return client


def _act(client: Client, url: str, action: str, pks: list, notes: str | None = None):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks], "index": 0}
    if notes is not None:
        data.update(apply="1", notes=notes)
    return client.post(url, data)


def test_the_queue_lists_pending_versions_first_and_filters_and_searches(reviewer_client, submit, approve):
    # given: one approved version, then two pending ones
    approve(submit(id="alpha-notes", name="Alpha Notes", category="productivity"))
    submit(id="beta-timer", name="Beta Timer")
    submit(id="gamma-report", name="Gamma Report", category="reporting")

    # when
    queue = reviewer_client.get(QUEUE)
    pending = reviewer_client.get(QUEUE, {"status__exact": "pending_review", "plugin__category": "reporting"})
    searched = reviewer_client.get(QUEUE, {"q": "dev@example.com"})

    # then
    assert queue.status_code == 200
    rows = [str(v) for v in queue.context["cl"].result_list]
    assert rows == ["beta-timer@1.0.0", "gamma-report@1.0.0", "alpha-notes@1.0.0"]
    assert [str(v) for v in pending.context["cl"].result_list] == ["gamma-report@1.0.0"]
    assert searched.context["cl"].result_count == 3


def test_the_review_page_shows_the_checklist_and_manifest_read_only(reviewer_client, submit):
    version = submit()

    page = reviewer_client.get(f"{QUEUE}{version.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Stored package matches its SHA-256" in html
    assert "No executables or native addons" in html
    assert "&quot;tasks:read&quot;" in html  # the manifest, pretty-printed and escaped
    assert 'name="_save"' not in html  # nothing to edit


def test_the_review_page_lists_the_package_files_and_shows_a_text_file_escaped(reviewer_client, submit):
    # given a package with a script, a binary and an HTML page that would run a script if rendered
    version = submit(
        package=make_zip(
            {
                "index.js": b"export default {}\n",
                "icon.png": b"\x89PNG\x00\x00",
                "page.html": b"<script>document.title='pwned'</script>",
            }
        )
    )

    # when the reviewer opens the review page, then the HTML file from it
    page = reviewer_client.get(f"{QUEUE}{version.pk}/change/").content.decode()
    shown = reviewer_client.get(f"{QUEUE}{version.pk}/file/", {"path": "page.html"})

    # then every file is listed with its size, text files link to their view, binaries do not
    assert "<td>index.js</td><td>18 bytes</td>" in page
    assert "<td>icon.png</td><td>6 bytes</td><td>binary</td>" in page
    assert f"{QUEUE}{version.pk}/file/?path=page.html" in page
    # and the file reads as text, escaped, never as markup
    assert shown.status_code == 200
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in shown.content.decode()
    assert "<script>document.title" not in shown.content.decode()


def test_a_binary_or_unknown_package_file_has_no_text_view(reviewer_client, submit, make_user):
    version = submit(package=make_zip({"index.js": b"x", "icon.png": b"\x89PNG\x00\x00"}))
    outsider = Client()
    outsider.force_login(make_user(email="nobody@example.com", is_staff=True))

    assert reviewer_client.get(f"{QUEUE}{version.pk}/file/", {"path": "icon.png"}).status_code == 404
    assert reviewer_client.get(f"{QUEUE}{version.pk}/file/", {"path": "../etc/passwd"}).status_code == 404
    assert reviewer_client.get(f"{QUEUE}{version.pk}/file/", {"path": "index.js"}).status_code == 200
    # staff without the review permissions read nothing of it
    assert outsider.get(f"{QUEUE}{version.pk}/file/", {"path": "index.js"}).status_code == 404


def test_approving_with_notes_lists_the_plugin(reviewer_client, reviewer, submit, power_client):
    # given
    version = submit()

    # when: the action first asks for notes, then applies
    confirmation = _act(reviewer_client, QUEUE, "approve_versions", [version.pk])
    done = _act(reviewer_client, QUEUE, "approve_versions", [version.pk], notes="Clean package, fair permissions.")

    # then
    assert confirmation.status_code == 200
    assert b'name="notes"' in confirmation.content
    assert done.status_code == 302
    version.refresh_from_db()
    assert version.status == VersionStatus.APPROVED
    review = PluginReview.objects.get(version=version)
    assert (review.decision, review.reviewer, review.notes) == (
        "approved",
        reviewer,
        "Clean package, fair permissions.",
    )
    assert AuditEvent.objects.filter(action="plugin.approved", actor=reviewer, target_id=str(version.pk)).exists()
    listing = power_client.get("/api/v1/plugins").json()
    assert [p["id"] for p in listing["plugins"]] == ["time-tracker"]


def test_a_decision_without_notes_changes_nothing(reviewer_client, submit):
    version = submit()

    response = _act(reviewer_client, QUEUE, "reject_versions", [version.pk], notes="   ")

    assert response.status_code == 200  # the confirmation page again, with the error
    assert b"This field is required" in response.content
    version.refresh_from_db()
    assert version.status == VersionStatus.PENDING_REVIEW
    assert not PluginReview.objects.exists()


def test_rejecting_records_the_decision_and_keeps_the_plugin_unlisted(reviewer_client, submit, developer_client):
    version = submit()

    _act(reviewer_client, QUEUE, "reject_versions", [version.pk], notes="Asks for network without a reason.")

    version.refresh_from_db()
    assert version.status == VersionStatus.REJECTED
    assert Plugin.objects.get().status == PluginStatus.UNLISTED
    notes = developer_client.get("/api/v1/plugins/developer/plugins/time-tracker").json()["versions"][0]["reviews"]
    assert notes[0]["notes"] == "Asks for network without a reason."


def test_a_developer_cannot_approve_their_own_plugin_even_as_staff(submit, developer):
    # given: the developer is also a staff reviewer
    developer.is_staff = True
    developer.save()
    developer.groups.add(Group.objects.get(name=REVIEWERS_GROUP))
    version = submit()
    client = Client()
    client.force_login(developer)

    # when
    response = _act(client, QUEUE, "approve_versions", [version.pk], notes="Self-approval")

    # then
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.status == VersionStatus.PENDING_REVIEW
    messages = [str(m) for m in client.get(QUEUE).context["messages"]]
    assert any("cannot review their own" in m for m in messages)


def test_a_version_with_checklist_failures_cannot_be_approved(reviewer_client, submit):
    version = submit(package=make_zip({"index.js": b"x", "run.sh": b"#!/bin/sh"}))

    _act(reviewer_client, QUEUE, "approve_versions", [version.pk], notes="ok")

    version.refresh_from_db()
    assert version.status == VersionStatus.PENDING_REVIEW


def test_a_zip_bomb_fails_its_checklist_and_cannot_be_approved(reviewer_client, submit):
    # given a submitted package with one 150 MiB zero-filled member (about 1000:1)
    version = submit(package=make_zip_bomb())
    checks = {item["key"]: item for item in version.checklist}
    assert checks["compression_ratio_within_limit"]["passed"] is False
    assert "assets/zeros-0.dat" in checks["compression_ratio_within_limit"]["detail"]

    # when a reviewer approves it
    _act(reviewer_client, QUEUE, "approve_versions", [version.pk], notes="ok")

    # then it stays in the queue
    version.refresh_from_db()
    assert version.status == VersionStatus.PENDING_REVIEW


def test_suspending_hides_the_plugin_and_blocks_installs(reviewer_client, reviewer, listed, power_client):
    # given
    version = listed()

    # when
    _act(reviewer_client, PLUGINS_ADMIN, "suspend_plugins", [version.plugin_id], notes="Malware report.")

    # then
    assert Plugin.objects.get().status == PluginStatus.SUSPENDED
    assert power_client.get("/api/v1/plugins").json()["total"] == 0
    install = power_client.post("/api/v1/plugins/time-tracker/install")
    assert install.status_code == 409
    assert install.json()["code"] == "plugin_suspended"
    assert AuditEvent.objects.filter(action="plugin.suspended", actor=reviewer).exists()
    history = reviewer_client.get(f"{PLUGINS_ADMIN}{version.plugin_id}/change/").content.decode()
    assert "Malware report." in history
    assert "Looks good." in history


@pytest.mark.parametrize(
    "url",
    [
        "/admin/accounts/user/",
        "/admin/auth/group/",
        "/admin/billing/billingaccount/",
        "/admin/billing/paymentfailure/",
        "/admin/djstripe/customer/",
        "/admin/core/auditevent/",
        "/admin/marketplace/revenueevent/",
    ],
)
def test_reviewers_cannot_open_anything_else_in_the_admin(reviewer_client, url):
    assert reviewer_client.get(url).status_code == 403


def test_reviewers_cannot_change_a_user_or_edit_a_version(reviewer_client, submit, make_user):
    version = submit()
    someone = make_user("someone@example.com")

    change_user = reviewer_client.post(f"/admin/accounts/user/{someone.pk}/change/", {"tier": "team"})
    edit_version = reviewer_client.post(f"{QUEUE}{version.pk}/change/", {"status": "approved"})

    assert change_user.status_code == 403
    assert edit_version.status_code == 403
    someone.refresh_from_db()
    assert someone.tier == "free"
    assert PluginVersion.objects.get().status == VersionStatus.PENDING_REVIEW


def test_the_reviewers_group_holds_exactly_the_review_permissions():
    codenames = set(Group.objects.get(name=REVIEWERS_GROUP).permissions.values_list("codename", flat=True))

    assert codenames == {
        "view_plugin",
        "view_pluginversion",
        "view_pluginreview",
        "review_pluginversion",
        "suspend_plugin",
    }


@pytest.mark.django_db(transaction=True)
def test_the_reviewers_group_survives_a_database_flush():
    # given a database flushed the way transactional tests and operators flush it
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from apps.marketplace.reviewers import GROUP_NAME, PERMISSIONS

    call_command("flush", interactive=False, verbosity=0)

    # then the reviewers group is back with exactly its permissions
    group = Group.objects.get(name=GROUP_NAME)
    assert sorted(group.permissions.values_list("content_type__app_label", "codename")) == sorted(PERMISSIONS)
