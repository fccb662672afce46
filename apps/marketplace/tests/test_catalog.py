"""The catalog and installs as the desktop client uses them: listing, full-text search, sorting,
tier gates, free installs with a signed download link, uninstall, ratings."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts.testing import client_for
from apps.marketplace.models import Plugin, PluginInstall

from .conftest import make_zip

pytestmark = pytest.mark.django_db

CATALOG = "/api/v1/plugins"


@pytest.mark.parametrize("tier", ["free", "pro"])
def test_free_and_pro_users_get_the_feature_gate(make_user, tier, listed):
    listed()
    client = client_for(make_user(f"{tier}@example.com", tier=tier))

    for response in (
        client.get(CATALOG),
        client.get(f"{CATALOG}/time-tracker"),
        client.post(f"{CATALOG}/time-tracker/install"),
    ):
        assert response.status_code == 403
        body = response.json()
        assert body["code"] == "feature_not_available"
        assert body["feature"] == "plugin_marketplace"
        assert body["required_tier"] == "power"


@pytest.mark.parametrize("tier", ["power", "team"])
def test_power_and_team_users_see_only_approved_plugins(make_user, tier, listed, submit):
    # given: one approved plugin and one still pending
    listed()
    submit(id="pending-one", name="Pending One")

    # when
    body = client_for(make_user(f"{tier}@example.com", tier=tier)).get(CATALOG).json()

    # then
    assert body["total"] == 1
    assert body["page"] == 1
    assert body["plugins"] == [
        {
            "id": "time-tracker",
            "name": "Time Tracker",
            "description": "Track the time you spend on each task and project.",
            "version": "1.0.0",
            "author": "Dev Eloper",
            "permissions": ["tasks:read", "projects:read"],
            "category": "time_tracking",
            "price_cents": 0,
            "rating": None,
            "rating_count": 0,
            "installs": 0,
        }
    ]


def test_the_listing_shows_the_latest_approved_version(listed, submit, power_client):
    listed()
    listed(version="1.2.0", name="Time Tracker Pro", description="Now with reports.")
    submit(version="2.0.0-beta.1", name="Unreviewed name")

    detail = power_client.get(f"{CATALOG}/time-tracker").json()

    assert detail["version"] == "1.2.0"
    assert detail["name"] == "Time Tracker Pro"
    assert detail["installed"] is False


def test_search_is_full_text_ranked_and_uses_the_stored_vector(listed, power_client):
    # given
    listed(id="time-tracker", name="Time Tracker", description="Log hours against tasks.")
    listed(id="invoice-maker", name="Invoice Maker", description="Turn tracked time into invoices.", category="finance")
    listed(id="note-sync", name="Note Sync", description="Sync notes to markdown files.", category="productivity")

    # when
    with CaptureQueriesContext(connection) as queries:
        body = power_client.get(CATALOG, {"q": "time tracking"}).json()

    # then: both mention time and tracking (stemmed); the name match ranks first
    assert [p["id"] for p in body["plugins"]] == ["time-tracker", "invoice-maker"]
    assert body["total"] == 2
    search_sql = next(q["sql"] for q in queries.captured_queries if "@@" in q["sql"])
    assert '"search_vector" @@' in search_sql
    assert "to_tsvector" not in search_sql


def test_category_filter_and_sorts(listed, power_client, make_user):
    listed(id="a-plugin", name="A plugin", category="finance")
    listed(id="b-plugin", name="B plugin", category="finance")
    listed(id="c-plugin", name="C plugin", category="reporting")
    Plugin.objects.filter(slug="a-plugin").update(install_count=5, rating_avg=3.0, rating_count=2)
    Plugin.objects.filter(slug="b-plugin").update(install_count=9, rating_avg=4.5, rating_count=2)

    finance = power_client.get(CATALOG, {"category": "finance", "sort": "installs"}).json()
    by_rating = power_client.get(CATALOG, {"sort": "rating"}).json()
    newest = power_client.get(CATALOG, {"sort": "newest"}).json()
    bad = power_client.get(CATALOG, {"sort": "price"})

    assert [p["id"] for p in finance["plugins"]] == ["b-plugin", "a-plugin"]
    assert [p["id"] for p in by_rating["plugins"]] == ["b-plugin", "a-plugin", "c-plugin"]
    assert newest["plugins"][0]["id"] == "c-plugin"
    assert bad.status_code == 400
    assert "sort" in bad.json()["fields"]


def test_a_free_install_answers_a_signed_download_url_of_the_package(listed, power_client, power_user):
    # given
    package = make_zip({"index.js": b"console.log('hi')"})
    listed(package=package)

    # when
    response = power_client.post(f"{CATALOG}/time-tracker/install")

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["version"] == "1.0.0"
    download = Client().get(body["download_url"])  # no credentials: the signed link is enough
    assert download.status_code == 200
    data = b"".join(download.streaming_content)
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(package).hexdigest()
    assert download["X-Checksum"] == hashlib.sha256(package).hexdigest()
    assert PluginInstall.objects.get(user=power_user).version.version == "1.0.0"
    assert power_client.get(f"{CATALOG}/time-tracker").json()["installs"] == 1


def test_installing_twice_keeps_one_install(listed, power_client):
    listed()

    power_client.post(f"{CATALOG}/time-tracker/install")
    again = power_client.post(f"{CATALOG}/time-tracker/install")

    assert again.status_code == 200
    assert PluginInstall.objects.filter(uninstalled_at__isnull=True).count() == 1
    assert Plugin.objects.get().install_count == 1


def test_a_forged_or_expired_download_link_is_refused(listed, power_client, settings):
    listed()
    url = power_client.post(f"{CATALOG}/time-tracker/install").json()["download_url"]

    forged = Client().get(url[:-4] + ("AAAA" if not url.endswith("AAAA") else "BBBB"))
    settings.MARKETPLACE_DOWNLOAD_URL_MAX_AGE = -1
    expired = Client().get(url)

    assert forged.status_code == 404
    assert forged.json()["code"] == "download_link_invalid"
    assert expired.status_code == 404


def test_uninstall_removes_the_install_and_invalidates_its_links(listed, power_client):
    listed()
    url = power_client.post(f"{CATALOG}/time-tracker/install").json()["download_url"]

    removed = power_client.delete(f"{CATALOG}/time-tracker/install")
    again = power_client.delete(f"{CATALOG}/time-tracker/install")

    assert removed.status_code == 200
    assert removed.json() == {"ok": True}
    assert again.status_code == 404
    assert again.json()["code"] == "not_installed"
    assert Client().get(url).status_code == 404
    assert Plugin.objects.get().install_count == 0
    assert power_client.get(f"{CATALOG}/time-tracker/download").status_code == 404


def test_installers_get_a_fresh_download_url(listed, power_client):
    listed()
    power_client.post(f"{CATALOG}/time-tracker/install")

    response = power_client.get(f"{CATALOG}/time-tracker/download")

    assert response.status_code == 200
    assert Client().get(response.json()["download_url"]).status_code == 200


def test_installing_an_unapproved_or_unknown_plugin_is_a_404(submit, power_client):
    submit()

    pending = power_client.post(f"{CATALOG}/time-tracker/install")
    unknown = power_client.post(f"{CATALOG}/nothing-here/install")

    assert pending.status_code == 404
    assert pending.json()["code"] == "plugin_not_available"
    assert unknown.status_code == 404
    assert power_client.get(f"{CATALOG}/time-tracker").status_code == 404


def test_only_installers_rate_once_then_update(listed, power_client):
    listed()

    before_install = power_client.post(f"{CATALOG}/time-tracker/ratings", {"stars": 5}, format="json")
    power_client.post(f"{CATALOG}/time-tracker/install")
    first = power_client.post(f"{CATALOG}/time-tracker/ratings", {"stars": 4, "text": "Handy"}, format="json")
    second = power_client.post(f"{CATALOG}/time-tracker/ratings", {"stars": 1}, format="json")
    updated = power_client.put(f"{CATALOG}/time-tracker/ratings", {"stars": 2}, format="json")
    out_of_range = power_client.put(f"{CATALOG}/time-tracker/ratings", {"stars": 6}, format="json")

    assert before_install.status_code == 403
    assert before_install.json()["code"] == "not_installed"
    assert first.status_code == 201
    assert first.json()["rating"] == 4.0
    assert second.status_code == 409
    assert second.json()["code"] == "already_rated"
    assert updated.status_code == 200
    assert updated.json() == {"stars": 2, "text": "", "rating": 2.0, "rating_count": 1}
    assert out_of_range.status_code == 400
    assert power_client.get(CATALOG).json()["plugins"][0]["rating"] == 2.0
