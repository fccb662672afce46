"""A review as a reviewer does it: a headless Chromium against the real ASGI server logs in, opens
the queue, reads the package's files, approves with notes on the action's confirmation page, and the
plugin is then listed by the catalog API over HTTP."""

from __future__ import annotations

import json
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select

from apps.accounts.tokens import tokens_issue
from apps.core.testing.browser import admin_login, wait
from apps.marketplace.models import PluginReview, VersionStatus
from conftest import DEFAULT_PASSWORD

from .conftest import make_zip

# The server thread reads committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


def _catalog(base_url: str, user) -> dict:
    request = urllib.request.Request(
        f"{base_url}/api/v1/plugins?q=time",
        headers={"Authorization": f"Bearer {tokens_issue(user=user).access_token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_reviewer_approves_in_the_browser_and_the_plugin_is_listed(
    browser, live_asgi_server, reviewer, submit, power_user
):
    # given: a submitted plugin waiting in the queue, not in the catalog yet
    version = submit()
    base = live_asgi_server.http_url
    assert _catalog(base, power_user)["total"] == 0

    # when: the reviewer logs in and opens the queue
    admin_login(browser, base_url=base, email=reviewer.email, password=DEFAULT_PASSWORD)
    browser.get(f"{base}/admin/marketplace/pluginversion/?status__exact=pending_review")
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "result_list")))
    assert "Time Tracker" in browser.find_element(By.ID, "result_list").text

    # and reads the checklist on the review page
    browser.get(f"{base}/admin/marketplace/pluginversion/{version.pk}/change/")
    checklist = wait(browser).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "table.plugin-checklist"))
    )
    assert "FAIL" not in checklist.text

    # and approves it from the queue with notes on the confirmation page
    browser.get(f"{base}/admin/marketplace/pluginversion/")
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "result_list")))
    browser.find_element(By.CSS_SELECTOR, f"input[name=_selected_action][value='{version.pk}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("approve_versions")
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    notes = wait(browser).until(expected_conditions.presence_of_element_located((By.NAME, "notes")))
    notes.send_keys("Clean package; permissions match the description.")
    browser.find_element(By.NAME, "confirm").click()
    success = wait(browser).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".messagelist .success"))
    )

    # then: the decision is recorded and the catalog lists the plugin
    assert "1 done" in success.text
    version.refresh_from_db()
    assert version.status == VersionStatus.APPROVED
    assert PluginReview.objects.get(version=version).notes == "Clean package; permissions match the description."
    catalog = _catalog(base, power_user)
    assert [plugin["id"] for plugin in catalog["plugins"]] == ["time-tracker"]


def test_a_reviewer_reads_a_package_file_as_text_and_its_script_never_runs(browser, live_asgi_server, reviewer, submit):
    # given: a submitted package holding an HTML page with a script in it
    script = "<script>document.title = 'pwned'</script>"
    version = submit(package=make_zip({"index.js": b"export default {}\n", "page.html": script.encode()}))
    base = live_asgi_server.http_url

    # when: the reviewer opens the review page and follows the file's link
    admin_login(browser, base_url=base, email=reviewer.email, password=DEFAULT_PASSWORD)
    browser.get(f"{base}/admin/marketplace/pluginversion/{version.pk}/change/")
    files = wait(browser).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "table.plugin-files"))
    )
    assert "index.js" in files.text
    assert "page.html" in files.text
    files.find_element(By.XPATH, ".//tr[td[1]='page.html']//a").click()
    shown = wait(browser).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "pre.package-file")))

    # then: the file reads as its text, and the page did not run it
    assert shown.text == script
    assert "pwned" not in browser.title
    assert browser.execute_script("return document.querySelectorAll('pre.package-file script').length") == 0
