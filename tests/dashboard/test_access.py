"""Who may see each dashboard page and who may act: login, staff, the view and change permissions, CSRF."""

from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from conveyor import queues, workers
from conveyor.core.models import OutboxEntry, QueueState, TaskRecord, WorkerProcess
from conveyor.scheduling.models import Fire, Schedule
from conveyor.workflows import canvas, handle, progress
from conveyor.workflows.models import Workflow
from tests.dashboard.conftest import failed_task, logged_in, make_task, make_user, post_forms

pytestmark = pytest.mark.django_db


@dataclass
class World:
    failed: TaskRecord
    ready: TaskRecord
    schedule: Schedule
    worker: str
    open_workflow: str
    cancelled_workflow: str


@pytest.fixture
def world(db):
    """Something for every page to show and every action to change."""
    failed = failed_task()
    ready = make_task()
    schedule = Schedule.objects.create(name="nightly", task_path="demo.tasks.add", args=[1, 2], interval_seconds=60)
    me = workers.identity()
    workers.register(me, threads=2, queues=["default"])
    queues.pause("emails", by="someone")
    open_workflow = handle.enqueue(canvas.chain(canvas.Signature("demo.tasks.add", (1, 2))))
    cancelled_workflow = handle.enqueue(canvas.chain(canvas.Signature("demo.tasks.add", (3, 4))))
    progress.cancel(cancelled_workflow.id)
    return World(failed, ready, schedule, me.id, open_workflow.id, cancelled_workflow.id)


def state():
    """Everything a dashboard action could change."""
    return {
        "tasks": sorted((str(task_id), status) for task_id, status in TaskRecord.objects.values_list("id", "status")),
        "outbox": OutboxEntry.objects.count(),
        "queues": sorted(QueueState.objects.values_list("name", "paused")),
        "schedules": sorted(Schedule.objects.values_list("name", "enabled")),
        "fires": Fire.objects.count(),
        "workers": sorted(WorkerProcess.objects.values_list("id", "quiet")),
        "workflows": sorted((str(w), s) for w, s in Workflow.objects.values_list("id", "status")),
    }


# Every page: (name, its URL given the world, whether an operator sees action buttons on it).
PAGES = [
    ("overview", lambda w: reverse("dashboard:overview"), True),
    ("overview-fragment", lambda w: reverse("dashboard:overview-fragment"), True),
    ("series", lambda w: reverse("dashboard:series"), False),
    ("tasks", lambda w: reverse("dashboard:tasks"), True),
    ("tasks-filtered", lambda w: reverse("dashboard:tasks") + "?status=FAILED&q=bad", True),
    ("task", lambda w: reverse("dashboard:task", args=[w.failed.id]), True),
    ("failed", lambda w: reverse("dashboard:failed"), True),
    ("scheduled", lambda w: reverse("dashboard:scheduled"), True),
    ("queues", lambda w: reverse("dashboard:queues"), True),
    ("queues-fragment", lambda w: reverse("dashboard:queues-fragment"), True),
    ("workers", lambda w: reverse("dashboard:workers"), True),
    ("workers-fragment", lambda w: reverse("dashboard:workers-fragment"), True),
    ("workflows", lambda w: reverse("dashboard:workflows"), False),
    ("workflow", lambda w: reverse("dashboard:workflow", args=[w.open_workflow]), True),
]
PAGE_IDS = [name for name, _, _ in PAGES]

# Every action: (name, its URL given the world, the POST data that would change something).
ACTIONS = [
    ("tasks-action", lambda w: reverse("dashboard:tasks-action"), lambda w: {"action": "retry", "ids": [w.failed.id]}),
    ("task-retry", lambda w: reverse("dashboard:task-retry", args=[w.failed.id]), lambda w: {}),
    ("task-cancel", lambda w: reverse("dashboard:task-cancel", args=[w.ready.id]), lambda w: {}),
    ("failed-retry", lambda w: reverse("dashboard:failed-retry"), lambda w: {"task": "demo.tasks.add"}),
    ("schedule-enabled", lambda w: reverse("dashboard:schedule-enabled", args=["nightly"]), lambda w: {}),
    ("schedule-run", lambda w: reverse("dashboard:schedule-run", args=["nightly"]), lambda w: {}),
    ("queue-pause", lambda w: reverse("dashboard:queue-pause", args=["default"]), lambda w: {}),
    ("queue-resume", lambda w: reverse("dashboard:queue-resume", args=["emails"]), lambda w: {}),
    ("worker-quiet", lambda w: reverse("dashboard:worker-quiet", args=[w.worker]), lambda w: {"quiet": "true"}),
    ("workflow-cancel", lambda w: reverse("dashboard:workflow-cancel", args=[w.open_workflow]), lambda w: {}),
    ("workflow-retry", lambda w: reverse("dashboard:workflow-retry", args=[w.cancelled_workflow]), lambda w: {}),
]
ACTION_IDS = [name for name, _, _ in ACTIONS]


def action_paths(world):
    return {url(world) for _, url, _ in ACTIONS}


# --- pages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [page[1] for page in PAGES], ids=PAGE_IDS)
def test_anonymous_is_sent_to_the_admin_login_and_back(client, world, url):
    # Given no one logged in
    path = url(world)
    # When a page is asked for
    response = client.get(path)
    # Then the admin's login page, which comes back here afterwards
    assert response.status_code == 302
    assert response.url == "/admin/login/?" + urlencode({"next": path}, safe="/")


@pytest.mark.parametrize("url", [page[1] for page in PAGES], ids=PAGE_IDS)
@pytest.mark.parametrize(
    "who",
    [
        # Not staff, even with both permissions.
        dict(staff=False, perms=("view_taskrecord", "change_taskrecord")),
        # Staff, even with the change permission, but without the view permission.
        dict(staff=True, perms=("change_taskrecord",)),
        dict(staff=True, perms=()),
    ],
    ids=["non-staff", "staff-change-only", "staff-no-perm"],
)
def test_users_without_the_view_permission_or_staff_get_403(world, url, who):
    # Given a logged-in user who is not staff with the view permission
    client = logged_in(make_user("someone", **who))
    # When they ask for a page
    response = client.get(url(world))
    # Then 403, and nothing of the page
    assert response.status_code == 403
    assert b"403 Forbidden" in response.content
    assert world.failed.task_path.encode() not in response.content


@pytest.mark.parametrize("url", [page[1] for page in PAGES], ids=PAGE_IDS)
def test_view_only_staff_reads_every_page_without_action_buttons(viewer, world, url):
    # Given staff with the view permission only
    # When they open a page
    response = viewer.get(url(world))
    # Then it is shown, with no form that posts anywhere
    assert response.status_code == 200
    assert post_forms(response) == []


@pytest.mark.parametrize("url", [page[1] for page in PAGES if page[2]], ids=[p[0] for p in PAGES if p[2]])
def test_an_operator_sees_the_action_buttons(operator, world, url):
    # Given staff with the view and change permissions
    # When they open a page that has actions
    response = operator.get(url(world))
    # Then it shows forms posting to the action URLs
    assert response.status_code == 200
    forms = post_forms(response)
    assert forms
    assert all(form.split("?")[0] in _all_action_paths(world) for form in forms), forms


def _all_action_paths(world):
    """The action URLs a page may post to (those of ACTIONS, and the same actions on other rows)."""
    paths = action_paths(world)
    paths |= {reverse("dashboard:queue-pause", args=[name]) for name in ("default", "emails", "images", "reports")}
    paths |= {reverse("dashboard:queue-resume", args=[name]) for name in ("default", "emails", "images", "reports")}
    return paths


def test_the_task_page_of_an_unknown_task_is_404(viewer):
    response = viewer.get(reverse("dashboard:task", args=["00000000-0000-0000-0000-000000000000"]))
    assert response.status_code == 404


def test_the_page_of_an_unknown_workflow_is_404(viewer):
    response = viewer.get(reverse("dashboard:workflow", args=["00000000-0000-0000-0000-000000000000"]))
    assert response.status_code == 404


# --- actions --------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "data"), [(a[1], a[2]) for a in ACTIONS], ids=ACTION_IDS)
def test_each_action_changes_something_for_an_operator(operator, world, url, data):
    # Given the world as it is (the control for the refusals below: each action does act)
    before = state()
    # When an operator posts the action
    response = operator.post(url(world), data(world))
    # Then it redirected back and changed the state
    assert response.status_code == 302
    assert state() != before


@pytest.mark.parametrize(("url", "data"), [(a[1], a[2]) for a in ACTIONS], ids=ACTION_IDS)
def test_view_only_staff_cannot_act(viewer, world, url, data):
    # Given staff with the view permission only
    before = state()
    # When they post an action
    response = viewer.post(url(world), data(world))
    # Then 403 and nothing changed
    assert response.status_code == 403
    assert state() == before


@pytest.mark.parametrize(("url", "data"), [(a[1], a[2]) for a in ACTIONS], ids=ACTION_IDS)
def test_anonymous_actions_are_sent_to_the_login(client, world, url, data):
    # Given no one logged in
    before = state()
    # When an action is posted
    response = client.post(url(world), data(world))
    # Then to the login page, and nothing changed
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/?next=")
    assert state() == before


@pytest.mark.parametrize("url", [a[1] for a in ACTIONS], ids=ACTION_IDS)
def test_an_action_url_refuses_get(operator, world, url):
    # Given an operator
    before = state()
    # When an action URL is fetched with GET
    response = operator.get(url(world))
    # Then 405 (actions are POSTs only), and nothing changed
    assert response.status_code == 405
    assert state() == before


@pytest.mark.parametrize(("url", "data"), [(a[1], a[2]) for a in ACTIONS], ids=ACTION_IDS)
def test_an_action_without_a_csrf_token_is_refused(operator_user, world, url, data):
    # Given an operator whose browser enforces CSRF like a real one
    client = logged_in(operator_user, enforce_csrf_checks=True)
    before = state()
    # When an action is posted without the CSRF token
    response = client.post(url(world), data(world))
    # Then 403 and nothing changed
    assert response.status_code == 403
    assert state() == before


def test_an_action_with_the_page_csrf_token_goes_through(operator_user, world):
    # Given an operator with CSRF checks, who opened the queues page (which sets the token cookie)
    client = logged_in(operator_user, enforce_csrf_checks=True)
    client.get(reverse("dashboard:queues"))
    token = client.cookies["csrftoken"].value
    # When they pause a queue with the token
    response = client.post(reverse("dashboard:queue-pause", args=["default"]), {"csrfmiddlewaretoken": token})
    # Then it is paused
    assert response.status_code == 302
    assert QueueState.objects.get(name="default").paused


FULL_PAGES = [page for page in PAGES if page[0] not in ("series",) and "fragment" not in page[0]]


@pytest.mark.parametrize("url", [page[1] for page in FULL_PAGES], ids=[page[0] for page in FULL_PAGES])
def test_the_header_says_read_only_to_viewers_only(viewer, operator, world, url):
    # Given a viewer and an operator
    # When each opens a page
    # Then only the viewer is told the dashboard is read only for them
    assert b"read only" in viewer.get(url(world)).content
    assert b"read only" not in operator.get(url(world)).content
