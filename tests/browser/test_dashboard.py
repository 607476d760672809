"""The operator dashboard in Chromium, against web, a worker, the relay, RabbitMQ and PostgreSQL.

An operator logs in through the admin's login form and works only through the pages;
tasks are submitted over the HTTP API, as a client would. Waits are explicit and
generous (a slow CI machine only makes them longer); nothing asserts on time.
"""

import time

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conveyor import catalog
from tests.e2e.test_pipeline import submit

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

WAIT = 90  # seconds: the longest any step may take before the test fails
# While waiting: an element not there yet, or swapped out by htmx while being read.
IGNORED = (NoSuchElementException, StaleElementReferenceException)


def log_in(browser, system, operator):
    """Open the dashboard, get sent to the admin's login form, log in, land on the dashboard."""
    username, password = operator
    browser.get(f"{system.base_url}/dashboard/")
    WebDriverWait(browser, WAIT).until(lambda b: "/admin/login/" in b.current_url)
    browser.find_element(By.ID, "id_username").send_keys(username)
    browser.find_element(By.ID, "id_password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "form#login-form [type=submit]").click()
    WebDriverWait(browser, WAIT).until(lambda b: b.current_url == f"{system.base_url}/dashboard/")
    browser.find_element(By.ID, "totals")


def text(browser, css):
    """The text of the element `css` now, or None while it is not on the page (htmx swaps it)."""
    try:
        found = browser.find_elements(By.CSS_SELECTOR, css)
        return found[0].text.strip() if found else None
    except StaleElementReferenceException:  # swapped out between finding and reading
        return None


def total(browser, status):
    return text(browser, f"#totals b[data-status={status}]")


def column(browser, table, heading, rows="tbody tr"):
    """The texts in the column of `table` headed `heading` (found by its heading, not its place)."""
    cells = browser.find_elements(By.CSS_SELECTOR, f"{table} thead th")
    # textContent: .text is the rendered text, which the style upper-cases
    headings = [th.get_attribute("textContent").strip() for th in cells]
    if heading not in headings:
        return None
    found = browser.find_elements(By.CSS_SELECTOR, f"{table} {rows} > td:nth-child({headings.index(heading) + 1})")
    return [cell.text.strip() for cell in found]


def statuses_listed(browser, url):
    """Load the task list at `url` (again) and read each row's status."""
    browser.get(url)
    return column(browser, "form#bulk table", "Status", rows="tr[data-task]")


def wait_until(browser, condition, what):
    wait = WebDriverWait(browser, WAIT, poll_frequency=0.3, ignored_exceptions=IGNORED)
    return wait.until(lambda b: condition(b), f"waiting for {what}")


def holds_for(browser, condition, seconds, what):
    """Check `condition` again and again for `seconds`: it must hold every time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(browser), f"{what} stopped holding"
        time.sleep(0.5)


def test_operator_sees_failures_live_reads_a_traceback_and_retries_a_group(
    browser, screenshot, dashboard_system, operator, token
):
    system = dashboard_system
    # Given an operator on the overview
    log_in(browser, system, operator)
    assert (total(browser, "SUCCESSFUL"), total(browser, "FAILED")) == ("0", "0")
    browser.execute_script("window.notReloaded = true")

    # When tasks are submitted over the API: some succeed, some always fail, and some fail
    # every automatic attempt (1 + max_retries) but would succeed on the next
    flaky_failures = catalog.get("demo.tasks.flaky").max_retries + 1
    for i in range(3):
        submit(system, token, "demo.tasks.add", i, 10)
    for _ in range(2):
        submit(system, token, "demo.tasks.fail", "disk on fire")
    for _ in range(3):
        submit(system, token, "demo.tasks.flaky", flaky_failures)

    # Then the totals move on the page, which is never reloaded
    wait_until(browser, lambda b: total(b, "SUCCESSFUL") == "3" and total(b, "FAILED") == "5", "3 successful, 5 failed")
    assert browser.execute_script("return window.notReloaded === true"), "the page was reloaded"
    # and the graph shows the runs the worker reported (its heartbeat feeds it)
    wait_until(
        browser, lambda b: int(b.find_element(By.ID, "throughput").get_attribute("data-failed") or 0) > 0, "the graph"
    )
    assert browser.find_elements(By.CSS_SELECTOR, "#throughput canvas")
    screenshot("overview")

    # When the operator opens the failed tasks: one group per task and exception
    browser.find_element(By.LINK_TEXT, "Failed").click()
    fail_row = wait_until(
        browser, lambda b: b.find_element(By.CSS_SELECTOR, "tr[data-task-path='demo.tasks.fail']"), "groups"
    )
    assert fail_row.get_attribute("data-exception") == "demo.tasks.DemoFailure"
    flaky_row = browser.find_element(By.CSS_SELECTOR, "tr[data-task-path='demo.tasks.flaky']")
    assert "Retry all 3" in flaky_row.find_element(By.NAME, "retry-group").text
    screenshot("failed")

    # and clicks through to one failed task
    fail_row.find_element(By.LINK_TEXT, "demo.tasks.fail").click()
    wait_until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "tr[data-task]"), "the failed demo.tasks.fail tasks")
    assert statuses_listed(browser, browser.current_url) == ["FAILED", "FAILED"]
    browser.find_element(By.CSS_SELECTOR, "tr[data-task] a").click()
    # Then its traceback is there, with the exception and its message
    traceback = wait_until(browser, lambda b: b.find_element(By.CSS_SELECTOR, "pre.traceback"), "the traceback").text
    assert "Traceback (most recent call last)" in traceback
    assert "demo.tasks.DemoFailure: disk on fire" in traceback or "DemoFailure: disk on fire" in traceback
    assert "FAILED" in browser.find_element(By.CSS_SELECTOR, "h1 .status").text
    # and its timeline tells the attempt's failure before the end
    timeline = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "ol.timeline li")]
    failed_at = next(i for i, item in enumerate(timeline) if "attempt 1 failed: demo.tasks.DemoFailure" in item)
    finished_at = next(i for i, item in enumerate(timeline) if item.endswith("finished FAILED"))
    assert failed_at < finished_at, timeline
    pre = browser.find_element(By.CSS_SELECTOR, "pre.traceback")
    browser.execute_script("arguments[0].scrollIntoView({block: 'end'})", pre)
    screenshot("task")

    # When the operator retries every failed demo.tasks.flaky with its group's button
    browser.find_element(By.LINK_TEXT, "Failed").click()
    wait_until(browser, lambda b: b.find_element(By.CSS_SELECTOR, "tr[data-task-path='demo.tasks.flaky']"), "groups")
    browser.find_element(By.CSS_SELECTOR, "tr[data-task-path='demo.tasks.flaky'] button[name=retry-group]").click()
    wait_until(
        browser,
        lambda b: "Retried 3 task(s) of demo.tasks.flaky" in b.find_element(By.TAG_NAME, "body").text,
        "the message",
    )

    # Then they run again and succeed, as their task list shows
    flaky_list = f"{system.base_url}/dashboard/tasks/?task=demo.tasks.flaky"
    wait_until(browser, lambda b: statuses_listed(b, flaky_list) == ["SUCCESSFUL"] * 3, "the flaky tasks to succeed")
    # and only demo.tasks.fail is left among the failed groups
    browser.get(f"{system.base_url}/dashboard/failed/")
    groups = browser.find_elements(By.CSS_SELECTOR, "#failed-groups tr[data-task-path]")
    assert [row.get_attribute("data-task-path") for row in groups] == ["demo.tasks.fail"]
    # and the overview counts them
    browser.get(f"{system.base_url}/dashboard/")
    wait_until(browser, lambda b: total(b, "SUCCESSFUL") == "6" and total(b, "FAILED") == "2", "6 successful, 2 failed")


def queue_cell(browser, queue, css):
    return text(browser, f"tr[data-queue='{queue}'] {css}")


def number(figure):
    """A figure shown on a page as a number; -1 for "?" (unknown just now) or none."""
    return int(figure) if figure and figure.isdigit() else -1


def consumers(browser, queue):
    """The queue's Consumers figure, or None while the table is being swapped."""
    found = column(browser, "#queues-table", "Consumers", rows=f"tr[data-queue='{queue}']")
    return found[0] if found else None


def test_operator_pauses_a_queue_its_tasks_wait_and_run_once_resumed(
    browser, screenshot, dashboard_system, operator, token
):
    system = dashboard_system
    # Given an operator on the queues page, the default queue running with a consumer
    log_in(browser, system, operator)
    browser.find_element(By.LINK_TEXT, "Queues").click()
    wait_until(browser, lambda b: queue_cell(b, "default", ".queue-state") == "running", "the queue table")
    wait_until(browser, lambda b: consumers(b, "default") == "1", "the worker to consume default")

    # When the operator pauses it
    browser.find_element(By.CSS_SELECTOR, "tr[data-queue=default] button[name=pause]").click()
    # Then it shows PAUSED, and the worker stops consuming it (within a heartbeat)
    wait_until(browser, lambda b: queue_cell(b, "default", ".queue-state") == "PAUSED", "PAUSED")
    wait_until(browser, lambda b: consumers(b, "default") == "0", "no consumer on default")

    # When tasks are submitted to it
    ids = [submit(system, token, "demo.tasks.add", i, 1) for i in range(3)]
    listed = f"{system.base_url}/dashboard/tasks/?queue=default&task=demo.tasks.add"
    # Then they wait in RabbitMQ, READY, for several heartbeats
    browser.get(f"{system.base_url}/dashboard/queues/")
    # (at least 3: RabbitMQ's count would include a message an earlier test left behind)
    wait_until(browser, lambda b: number(queue_cell(b, "default", ".queue-ready")) >= 3, "3 messages ready")
    screenshot("paused")
    holds_for(browser, lambda b: statuses_listed(b, listed) == ["READY"] * 3, 5, "READY while paused")

    # When the operator resumes the queue
    browser.get(f"{system.base_url}/dashboard/queues/")
    browser.find_element(By.CSS_SELECTOR, "tr[data-queue=default] button[name=resume]").click()
    wait_until(browser, lambda b: queue_cell(b, "default", ".queue-state") == "running", "running again")
    # Then the tasks run
    wait_until(browser, lambda b: statuses_listed(b, listed) == ["SUCCESSFUL"] * len(ids), "the tasks to succeed")
