"""The real settings plus the test-only app whose task kills its worker (tests/e2e/test_worker_deaths.py)."""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.crashing"]
