"""Staff pages as a person sees them: a headless Chromium against the real ASGI server (uvicorn).

Static files (admin CSS/JS, Swagger UI's bundle) are served by the app itself, so these tests
fail when nothing serves /static/ or when the docs page depends on a CDN.
"""

from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions

from apps.accounts.models import User
from apps.core.testing.browser import admin_login, wait
from conftest import DEFAULT_PASSWORD

# The server thread reads committed rows. No available_apps: the admin index lists every app.
pytestmark = pytest.mark.django_db(transaction=True)

# The admin header's background in Django's admin/css/base.css (--header-bg: var(--primary)).
ADMIN_HEADER_BACKGROUND = "rgba(65, 118, 144, 1)"


def _response_statuses(driver) -> dict[str, int]:
    """URL → HTTP status of every response the browser received since the last call."""
    statuses: dict[str, int] = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived":
            response = message["params"]["response"]
            statuses[response["url"]] = response["status"]
    return statuses


def _status_of(statuses: dict[str, int], path_part: str) -> int | None:
    return next((status for url, status in statuses.items() if path_part in url), None)


@pytest.fixture
def staff_user(db) -> User:
    return User.objects.create_superuser(email="staff@example.com", password=DEFAULT_PASSWORD)


def test_admin_pages_are_styled_by_static_files_the_app_serves(browser, live_asgi_server, staff_user):
    # given a staff member logged in through the admin's login form
    admin_login(browser, base_url=live_asgi_server.http_url, email=staff_user.email, password=DEFAULT_PASSWORD)
    _response_statuses(browser)  # forget the login page's responses

    for path in ("/admin/", "/admin/accounts/user/"):
        # when they open the page
        browser.get(live_asgi_server.http_url + path)
        wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "header")))

        # then admin's stylesheet answered 200 and was applied
        statuses = _response_statuses(browser)
        assert _status_of(statuses, "/static/admin/css/base.css") == 200, statuses
        header = browser.find_element(By.ID, "header")
        assert header.value_of_css_property("background-color") == ADMIN_HEADER_BACKGROUND
    # and the changelist lists the staff member
    assert staff_user.email in browser.find_element(By.ID, "result_list").text


def test_the_admin_index_reads_as_one_product(browser, live_asgi_server, staff_user):
    # when a staff member logs in and looks at the admin's index
    admin_login(browser, base_url=live_asgi_server.http_url, email=staff_user.email, password=DEFAULT_PASSWORD)
    browser.get(live_asgi_server.http_url + "/admin/")
    wait(browser).until(expected_conditions.presence_of_element_located((By.ID, "header")))

    # then the header and title name the product, not Django
    assert browser.find_element(By.ID, "site-name").text == "Adiuva administration"
    assert "Django" not in browser.title
    # and each section has a title of its own, with model names spelled as people spell them
    sections = [caption.text for caption in browser.find_elements(By.CSS_SELECTOR, "#content-main caption")]
    assert len(sections) == len(set(sections)), sections
    models = browser.find_element(By.ID, "content-main").text
    assert "OAuth grants" in models
    assert "O auth" not in models


def test_api_docs_render_the_operations_from_bundled_swagger_ui(browser, live_asgi_server):
    # when someone opens the API docs
    browser.get(live_asgi_server.http_url + "/api/v1/docs/")

    # then Swagger UI (served by the app, not a CDN) rendered the schema's operations
    wait(browser).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
    paths = [element.text for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
    assert "/api/v1/auth/login" in paths
    statuses = _response_statuses(browser)
    bundle = next(url for url in statuses if "swagger-ui-bundle.js" in url)
    assert bundle.startswith(live_asgi_server.http_url + "/static/"), bundle
    assert statuses[bundle] == 200
