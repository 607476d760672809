"""Browser tests: Debian's Chromium, driven by Selenium, against the services as real processes.

`make test` installs `chromium` and `chromium-driver` (scripts/ensure-services.sh browser).
Both are given to Selenium by path, so Selenium Manager never looks anything up, and
Chromium's own background traffic (updates, sync, metrics) is switched off: only the
web service on 127.0.0.1 is reached.

Every test gets a screenshot of its last page in var/screenshots/<test>.png, passed or
failed, plus any it takes on the way (`screenshot("name")`); a failed test also leaves
the page's HTML there and prints the services' logs.
"""

import os
import re
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from tests.e2e import conftest as e2e
from tests.support.processes import ROOT

# The e2e fixtures: web, workers and the relay as processes, on the test database; an admin token.
system_env, start_system, token = e2e.system_env, e2e.start_system, e2e.token

# Selenium Manager is never needed (the driver is given by path); never let it reach out.
os.environ.setdefault("SE_OFFLINE", "true")
os.environ.setdefault("SE_AVOID_STATS", "true")

SCREENSHOTS = ROOT / "var" / "screenshots"
WIDTH, HEIGHT = 1280, 800
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-dev-shm-usage",
    f"--window-size={WIDTH},{HEIGHT}",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--no-pings",
    "--lang=en-US",
)
# Shorter than the defaults (5 s each), so the pages catch up within a second or two: a
# worker reads the paused queues at every heartbeat; the web reads RabbitMQ's figures this often.
FAST = {"CONVEYOR_WORKER_HEARTBEAT_SECONDS": "1", "CONVEYOR_QUEUE_METRICS_SECONDS": "1"}


def chromium_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail(
            "Chromium or its driver is missing: scripts/ensure-services.sh browser installs them (make test does)"
        )
    return chromium, driver


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.failed_call = report.failed
    return report


@pytest.fixture(scope="session")
def static_files():
    """The dashboard's CSS and JavaScript (htmx, uPlot) where the web service serves them from."""
    call_command("collectstatic", interactive=False, verbosity=0)
    return Path(settings.STATIC_ROOT)


@pytest.fixture
def browser(request):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    service = Service(executable_path=driver_path, log_output=os.devnull)
    name = _file_name(request.node.name)
    (SCREENSHOTS / f"{name}.html").unlink(missing_ok=True)  # a page kept by an earlier failed run
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    # The page itself WIDTH x HEIGHT (the window's size would include headless Chromium's frame).
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
    )
    yield driver
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
        if getattr(request.node, "failed_call", False):
            (SCREENSHOTS / f"{name}.html").write_text(driver.page_source)
            print(f"screenshot and page: {SCREENSHOTS / name}.png, .html; last URL {driver.current_url}")
    finally:
        driver.quit()


@pytest.fixture
def screenshot(request, browser):
    """screenshot("step") saves var/screenshots/<test>-<step>.png of the page as it is now."""

    def take(step: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{_file_name(request.node.name)}-{step}.png"
        browser.save_screenshot(str(path))
        return path

    return take


@pytest.fixture
def operator(transactional_db):
    """A Django superuser (staff, every permission): (username, password)."""
    from django.contrib.auth import get_user_model

    username, password = "operator", "browser-test-password"
    # Hashed as the web service checks it (tests/settings.py's quick MD5 hasher is not in its list).
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"]):
        get_user_model().objects.create_superuser(username, "operator@example.com", password)
    return username, password


@pytest.fixture
def dashboard_system(request, start_system, static_files):
    """Web, one worker and the relay, quick to notice a pause; their logs printed if the test fails."""
    env = {
        **FAST,
        # Plain HTTP on 127.0.0.1: the session and CSRF cookies may not be Secure-only.
        "DJANGO_SECURE_COOKIES": "false",
    }
    system = start_system(workers=1, env=env)
    yield system
    if getattr(request.node, "failed_call", False):
        print(system.logs())


def _file_name(test_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
