"""The failed page: FAILED tasks grouped by task and exception class, with "retry all" per group."""

import html

import pytest
from django.urls import reverse

from conveyor.core.models import TaskStatus
from tests.dashboard.conftest import error, failed_task, fixed_figures, make_task, messages_of, status_of

pytestmark = pytest.mark.django_db

URL = reverse("dashboard:failed")
RETRY = reverse("dashboard:failed-retry")


def groups(client):
    response = client.get(URL)
    assert response.status_code == 200
    return {(g["task"], g["exception"], g["reason"]): g["count"] for g in response.context["groups"]}


def test_failed_tasks_are_grouped_by_task_and_exception_with_counts(viewer):
    # Given FAILED tasks of two tasks and two exception classes, and tasks that did not fail
    for _ in range(3):
        failed_task("demo.tasks.add", "builtins.ValueError")
    for _ in range(2):
        failed_task("demo.tasks.add", "builtins.KeyError")
    failed_task("demo.tasks.noop", "builtins.ValueError", args=())
    make_task(status=TaskStatus.SUCCESSFUL, errors=[error()])
    make_task(errors=[error()])
    # When the failed page is opened
    found = groups(viewer)
    # Then one group per (task, exception class), with its count, the largest first
    assert found == {
        ("demo.tasks.add", "builtins.ValueError", ""): 3,
        ("demo.tasks.add", "builtins.KeyError", ""): 2,
        ("demo.tasks.noop", "builtins.ValueError", ""): 1,
    }
    assert list(found.values()) == [3, 2, 1]


def test_the_group_is_that_of_the_latest_error(viewer):
    failed_task(errors=[error("builtins.KeyError", n=1), error("builtins.ValueError", n=2)])
    assert groups(viewer) == {("demo.tasks.add", "builtins.ValueError", ""): 1}


def test_each_group_links_to_its_tasks_in_the_list(viewer):
    failed_task("demo.tasks.add", "builtins.ValueError")
    content = viewer.get(URL).content.decode()
    link = reverse("dashboard:tasks") + "?status=FAILED&task=demo.tasks.add&exception=builtins.ValueError"
    assert f'href="{html.escape(link)}"' in content


def test_each_group_has_a_retry_all_button_with_its_count(operator):
    for _ in range(3):
        failed_task("demo.tasks.add", "builtins.ValueError")
    assert "Retry all 3</button>" in operator.get(URL).content.decode()


def test_retry_all_retries_only_that_group(operator):
    # Given three groups of FAILED tasks
    chosen = [failed_task("demo.tasks.add", "builtins.ValueError") for _ in range(3)]
    same_task = [failed_task("demo.tasks.add", "builtins.KeyError") for _ in range(2)]
    same_exception = failed_task("demo.tasks.noop", "builtins.ValueError", args=())
    # When "retry all" of the (add, ValueError) group is pressed
    response = operator.post(RETRY, {"task": "demo.tasks.add", "exception": "builtins.ValueError", "reason": ""})
    # Then exactly that group is READY again
    assert {status_of(t) for t in chosen} == {TaskStatus.READY}
    assert {status_of(t) for t in [*same_task, same_exception]} == {TaskStatus.FAILED}
    assert response.url == URL
    assert messages_of(response) == ["Retried 3 task(s) of demo.tasks.add."]


def test_retry_all_of_the_group_without_an_exception_leaves_the_other_groups(operator):
    # Given dead-lettered tasks with no recorded error, and failures of the same task with one
    dead = [failed_task(errors=[], failure_reason="dead-lettered") for _ in range(2)]
    other = failed_task(exception="builtins.ValueError", failure_reason="dead-lettered")
    assert groups(operator) == {
        ("demo.tasks.add", "", "dead-lettered"): 2,
        ("demo.tasks.add", "builtins.ValueError", "dead-lettered"): 1,
    }
    # When "retry all" of the group without an exception is pressed, as its form posts it
    operator.post(RETRY, {"task": "demo.tasks.add", "exception": "", "reason": "dead-lettered"})
    # Then only that group is retried
    assert {status_of(t) for t in dead} == {TaskStatus.READY}
    assert status_of(other) == TaskStatus.FAILED


def test_retry_all_of_one_reason_leaves_the_same_exception_with_another_reason(operator):
    # Given the same task and exception, ended for two different reasons (two groups)
    exhausted = failed_task(failure_reason="retries exhausted")
    dead = failed_task(failure_reason="worker died 3 times while running it; dead-lettered")
    # When "retry all" of the first group is pressed
    operator.post(RETRY, {"task": "demo.tasks.add", "exception": "builtins.ValueError", "reason": "retries exhausted"})
    # Then only that group's task is retried
    assert status_of(exhausted) == TaskStatus.READY
    assert status_of(dead) == TaskStatus.FAILED


def test_the_retry_all_form_posts_what_names_its_group(operator):
    # Given two groups that differ only in their reason
    failed_task(failure_reason="retries exhausted")
    failed_task(failure_reason="dead-lettered")
    content = operator.get(URL).content.decode()
    # Then each group's form carries its reason
    assert '<input type="hidden" name="reason" value="retries exhausted">' in content
    assert '<input type="hidden" name="reason" value="dead-lettered">' in content


def test_retry_all_without_a_task_is_refused(operator):
    failed = failed_task()
    response = operator.post(RETRY, {"exception": "builtins.ValueError"})
    assert status_of(failed) == TaskStatus.FAILED
    assert messages_of(response) == ["Which task's failures? (task is missing)"]


def test_the_dead_letter_counts_of_each_queue_are_shown(viewer, queue_figures):
    # Given RabbitMQ's figures with 7 dead letters in "emails"
    figures = fixed_figures(default=0, emails=0)
    figures.depth[("emails", "dead_letter")] = 7
    queue_figures.set(figures)
    # Then the page shows them, "?" where unknown
    content = viewer.get(URL).content.decode()
    assert '<tr><td>emails.XQ</td><td class="num">7</td></tr>' in content
    assert '<tr><td>images.XQ</td><td class="num">?</td></tr>' in content
