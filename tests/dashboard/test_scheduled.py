"""The scheduled page: deferred tasks by due time, the schedules and their buttons, the fire history."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from conveyor.core.models import OutboxEntry, TaskRecord, TaskStatus
from conveyor.scheduling.models import Fire, FireOutcome, Schedule
from tests.dashboard.conftest import make_task, messages_of

pytestmark = pytest.mark.django_db

URL = reverse("dashboard:scheduled")
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def schedule(name="nightly", **fields):
    fields.setdefault("task_path", "demo.tasks.add")
    fields.setdefault("args", [1, 2])
    fields.setdefault("interval_seconds", 60)
    return Schedule.objects.create(name=name, **fields)


def section(content, table_id):
    start = content.index(f'id="{table_id}"')
    return content[start : content.index("</table>", start)]


def test_deferred_tasks_are_listed_soonest_first(viewer):
    # Given READY tasks due in 3, 1 and 2 hours, and tasks that are not deferred
    now = timezone.now()
    later, soonest, middle = (make_task(run_after=now + timedelta(hours=h)) for h in (3, 1, 2))
    make_task(run_after=now - timedelta(minutes=1))  # due already
    make_task()  # never deferred
    make_task(status=TaskStatus.CANCELLED, run_after=now + timedelta(hours=1))  # will not run
    make_task(status=TaskStatus.RUNNING, run_after=now + timedelta(hours=1))
    # When the scheduled page is opened
    content = viewer.get(URL).content.decode()
    # Then the deferred ones, by due time
    shown = re.findall(r"/dashboard/tasks/([0-9a-f-]{36})/", section(content, "deferred"))
    assert shown == [str(soonest.id), str(middle.id), str(later.id)]


def test_the_schedules_are_shown_with_their_state(viewer):
    schedule("a-enabled")
    schedule("b-disabled", enabled=False)
    content = viewer.get(URL).content.decode()
    assert re.search(r'id="schedule-a-enabled">.*?<td>enabled</td>', content, re.S)
    assert re.search(r'id="schedule-b-disabled">.*?DISABLED', content, re.S)


def test_disable_then_enable_a_schedule(operator):
    # Given an enabled schedule
    nightly = schedule()
    url = reverse("dashboard:schedule-enabled", args=[nightly.name])
    # When it is disabled
    response = operator.post(url, {"enabled": "false"})
    # Then it is, and the page says so
    assert not Schedule.objects.get(name="nightly").enabled
    assert messages_of(response) == ["nightly: disabled."]
    operator.get(response.url)
    # And when enabled again, it is
    response = operator.post(url, {"enabled": "true"})
    assert Schedule.objects.get(name="nightly").enabled
    assert messages_of(response) == ["nightly: enabled."]


def test_the_button_offers_the_opposite_of_the_state(operator):
    schedule("on")
    schedule("off", enabled=False)
    content = operator.get(URL).content.decode()
    assert re.search(r'id="schedule-on">.*?name="enabled" value="false"><button>Disable', content, re.S)
    assert re.search(r'id="schedule-off">.*?name="enabled" value="true"><button>Enable', content, re.S)


def test_run_now_enqueues_the_task_and_records_a_manual_fire(operator):
    # Given a schedule whose next fire is far away
    nightly = schedule(start_at=T0)
    next_fire = Schedule.objects.get(name="nightly").next_fire_time
    # When "run now" is pressed
    response = operator.post(reverse("dashboard:schedule-run", args=[nightly.name]))
    # Then a task of the schedule is READY with its outbox entry, the fire is recorded as manual,
    # and the schedule's cursor has not moved
    task = TaskRecord.objects.get()
    assert (task.task_path, task.args, task.schedule_name, task.status) == (
        "demo.tasks.add",
        [1, 2],
        "nightly",
        TaskStatus.READY,
    )
    assert OutboxEntry.objects.filter(task=task).exists()
    fire = Fire.objects.get()
    assert (fire.manual, fire.outcome, fire.task_id) == (True, FireOutcome.ENQUEUED, task.id)
    assert Schedule.objects.get(name="nightly").next_fire_time == next_fire
    assert messages_of(response) == [f"nightly: task {task.id} enqueued."]


def test_run_now_of_a_task_no_longer_in_the_catalog_says_why(operator):
    schedule("gone", task_path="demo.tasks.removed_long_ago")
    response = operator.post(reverse("dashboard:schedule-run", args=["gone"]))
    assert not TaskRecord.objects.exists()
    assert messages_of(response)[0].startswith("gone: not run: ")


@pytest.mark.parametrize("action", ["schedule-enabled", "schedule-run"])
def test_an_unknown_schedule_is_an_error_message(operator, action):
    response = operator.post(reverse(f"dashboard:{action}", args=["nope"]), {"enabled": "false"})
    assert response.url == URL
    assert "no schedule 'nope'" in messages_of(response)[0]
    assert not TaskRecord.objects.exists()


def fires():
    nightly = schedule()
    return {
        outcome: Fire.objects.create(schedule=nightly, fire_time=T0 + timedelta(minutes=n), outcome=outcome)
        for n, outcome in enumerate(FireOutcome.values)
    }


@pytest.mark.parametrize("outcome", FireOutcome.values)
def test_the_fire_history_filters_by_outcome(viewer, outcome):
    # Given one fire of each outcome
    fires()
    # When filtered by one outcome
    content = viewer.get(URL, {"outcome": outcome}).content.decode()
    # Then only that one is listed
    assert re.findall(r'<tr class="fire-(\w+)">', section(content, "fires")) == [outcome]


def test_the_fire_history_unfiltered_or_badly_filtered_shows_every_fire_newest_first(viewer):
    fires()
    newest_first = list(reversed(FireOutcome.values))
    for params in ({}, {"outcome": "exploded"}):
        content = viewer.get(URL, params).content.decode()
        assert re.findall(r'<tr class="fire-(\w+)">', section(content, "fires")) == newest_first
