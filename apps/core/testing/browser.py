"""A headless Chromium for tests: Debian's ``chromium`` driven through its ``chromedriver``.

Both come from apt (``make test`` installs them when missing); nothing is downloaded at run time:
the driver is named explicitly, so Selenium Manager never runs.
"""

from __future__ import annotations

import os
from urllib.parse import urljoin

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = (
    "Browser tests need Debian's chromium and chromium-driver: `make test` installs them as root; "
    "otherwise run `sudo apt-get install -y --no-install-recommends chromium chromium-driver`."
)
WAIT_SECONDS = 20


def browser_missing() -> str | None:
    """Why no browser can start here (a message saying how to fix it), or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} is missing. {INSTALL_HINT}"
    return None


def chrome_driver() -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.add_argument("--headless=new")
    options.add_argument("--window-size=1280,900")
    options.add_argument("--disable-dev-shm-usage")  # containers have a tiny /dev/shm
    options.add_argument("--disable-gpu")
    options.add_argument("--no-first-run")
    if os.geteuid() == 0:  # Chromium refuses to start its sandbox as root (CI runs as root)
        options.add_argument("--no-sandbox")
    # Performance log: lets tests read the status of every response the page loaded.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    return driver


def wait(driver: WebDriver, seconds: float = WAIT_SECONDS) -> WebDriverWait:
    return WebDriverWait(driver, seconds)


def admin_login(driver: WebDriver, *, base_url: str, email: str, password: str) -> None:
    """Log in through the admin's own login form, as a person would, and wait for the index."""
    driver.delete_all_cookies()
    driver.get(urljoin(base_url, "/admin/login/?next=/admin/"))
    driver.find_element(By.NAME, "username").send_keys(email)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # Logged in: the user tools appear; refused: the form comes back with an error note.
    wait(driver).until(
        lambda page: page.find_elements(By.ID, "user-tools") or page.find_elements(By.CSS_SELECTOR, ".errornote")
    )
    errors = driver.find_elements(By.CSS_SELECTOR, ".errornote")
    if errors:
        raise AssertionError(f"the admin refused the login: {errors[0].text}")
